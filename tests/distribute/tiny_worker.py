"""A small ``model.fit`` through every piece of :mod:`kyolo.distribute`, in seconds.

``python -m tests.distribute.tiny_worker OUT`` (one process per worker, with ``TF_CONFIG``) trains
Dense → synchronized BatchNorm → Dense on 32 fixed examples, global batch 8, for 2 epochs, with
the per-worker input shards, the Keras workaround, the chief/worker folders and the backup
restored from the chief's. It prints one JSON line: the epoch losses and the final weights.
Without ``TF_CONFIG`` :func:`train` is the one-process reference (tests call it directly).
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np

EXAMPLES, GLOBAL_BATCH, EPOCHS = 32, 8, 2


def data(context):
    """The 32 examples (x: 4 features, y: 1), shuffled, batched by 8 over all replicas; this
    worker's share under a multi-worker strategy (``context``)."""
    import tensorflow as tf

    from kyolo.data.pipeline import shard_order

    rng = np.random.default_rng(0)
    x = rng.normal(size=(EXAMPLES, 4)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)) ** 2
    # Reshuffled each epoch, as the training data: every worker must draw the same orders.
    ds = tf.data.Dataset.range(EXAMPLES).shuffle(EXAMPLES, seed=1, reshuffle_each_iteration=True)
    batch = GLOBAL_BATCH
    if context is not None:
        ds = shard_order(ds, EXAMPLES, context)
        batch = context.get_per_replica_batch_size(GLOBAL_BATCH)
    return ds.map(lambda i: (tf.gather(x, i), tf.gather(y, i))).batch(batch)


def train(out: str) -> dict:
    """Train under the strategy ``TF_CONFIG`` asks for; ``{"loss": [...], "weights": [...]}``."""
    import keras

    from kyolo import distribute
    from kyolo.callbacks import AtomicBackupAndRestore
    from kyolo.models import synchronized_batch_norm

    name = "multiworker" if "TF_CONFIG" in os.environ else "default"
    strategy = distribute.get_strategy(name)
    keras.utils.set_random_seed(0)
    written = distribute.write_dir(out)
    with strategy.scope():
        inputs = keras.Input((4,))
        # No bias before BatchNorm (it would get no gradient, as in Darknet's convolutions).
        hidden = keras.layers.Dense(8, use_bias=False)(inputs)
        hidden = keras.layers.BatchNormalization()(hidden)
        model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.ReLU()(hidden)))
        model = synchronized_batch_norm(model)
        model.compile(keras.optimizers.SGD(0.05), loss="mse")
    distribute.patch_multi_worker(model, strategy)
    callbacks = [
        keras.callbacks.CSVLogger(os.path.join(written, "history.csv")),
        AtomicBackupAndRestore(
            os.path.join(written, "backup"),
            restore_dir=os.path.join(out, "backup"),
            delete_checkpoint=False,
        ),
    ]
    os.makedirs(written, exist_ok=True)
    history = model.fit(
        distribute.distribute_dataset(strategy, data),
        epochs=EPOCHS,
        verbose=0,
        callbacks=callbacks,
    )
    if written != out:
        shutil.rmtree(written)
    return {
        "loss": [float(v) for v in history.history["loss"]],
        "weights": [w.tolist() for w in model.get_weights()],
    }


if __name__ == "__main__":
    print(json.dumps(train(sys.argv[1])))
