"""Three SGD steps of the nano detector on DigitsDet, one process or one worker of a cluster.

``python -m tests.distribute.step_worker OUT PRECISION`` (one process per worker, with
``TF_CONFIG``) trains kyolo's nano model (width 8, ``--sync-bn``'s SyncBatchNormalization) with
the YOLOv3 loss and kyolo's Nesterov SGD on 24 augmented DigitsDet images at 64 px, global batch
8, through the training job's pieces (per-worker input shards, ``patch_multi_worker``). The
model computes in ``PRECISION`` (``float32`` or ``float64``; the loss casts the logits to float32).
It prints one JSON line: the epoch loss and the final weights. Without ``TF_CONFIG`` it is the
one-process reference.

Why float64: in float32 the two set-ups round differently, and a BatchNorm output that rounds to
either side of 0 takes the other branch of the next LeakyReLU, whose gradient there is 0.1, not 1:
one such element (3.6e-7 vs -2.4e-7) moved the stem kernel's gradient by 4e-3 relative. That is
float32 at a kink, not a different computation; in float64 no value comes that close to 0.
"""

from __future__ import annotations

import json
import os
import sys

EXAMPLES, GLOBAL_BATCH, SIZE = 24, 8, 64


def heads_in(model, dtype: str):
    """``model`` with its output convs, float32 by design, computing in ``dtype`` too: the
    multi-worker all-reduce packs all gradients into one tensor, which needs a single dtype."""
    import keras

    def clone(layer):
        config = layer.get_config()
        if layer.name.startswith("scale_"):
            config["dtype"] = dtype
        return layer.__class__.from_config(config)

    cloned = keras.models.clone_model(model, clone_function=clone)
    cloned.set_weights(model.get_weights())
    return cloned


def train(out: str, precision: str) -> dict:
    """Train one epoch under the strategy ``TF_CONFIG`` asks for; ``{"loss", "weights"}``."""
    import keras

    from kyolo import data, distribute
    from kyolo.data.augment import Augmentation
    from kyolo.data.pipeline import make_dataset
    from kyolo.encode import target_encoder
    from kyolo.losses import YoloLoss
    from kyolo.models import build_model
    from kyolo.optim import build_optimizer
    from tests.helpers import nano_config

    strategy = distribute.get_strategy("multiworker" if "TF_CONFIG" in os.environ else "default")
    cfg = nano_config("yolov3", 10, SIZE)
    paths = data.make_digits(
        os.path.join(distribute.write_dir(out), "digits"),
        n_train=EXAMPLES,
        n_val=1,
        image_size=(SIZE, SIZE),
    )
    annotations = data.read_yolo(paths.train_images, paths.train_labels, cfg.num_classes)

    def dataset(context):
        return make_dataset(
            annotations,
            cfg,
            batch_size=GLOBAL_BATCH,
            training=True,
            seed=0,
            augment=Augmentation(),
            encode=target_encoder(cfg),
            input_context=context,
        )

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(precision)
    with strategy.scope():
        model = heads_in(build_model("nano", cfg, width=8, sync_bn=True), precision)
        model.compile(build_optimizer("sgd", 0.01), loss=[YoloLoss(cfg, s) for s in range(2)])
    distribute.patch_multi_worker(model, strategy)
    history = model.fit(distribute.distribute_dataset(strategy, dataset), epochs=1, verbose=0)
    return {
        "loss": float(history.history["loss"][0]),
        "weights": [w.tolist() for w in model.get_weights()],
    }


if __name__ == "__main__":
    print(json.dumps(train(sys.argv[1], sys.argv[2])))
