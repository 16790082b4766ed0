"""Training on several devices or machines with ``tf.distribute``, and the GPU numeric settings.

:data:`STRATEGIES` maps a name to a ``tf.distribute.Strategy`` builder:

* ``default``: one device (TF's default strategy);
* ``mirrored``: every GPU of this machine (``MirroredStrategy``);
* ``multiworker``: every GPU (or the CPU) of every machine named in ``TF_CONFIG``
  (``MultiWorkerMirroredStrategy``, synchronous all-reduce); one process per machine;
* ``tpu``: a Cloud TPU (``TPUStrategy``, resolved from ``TPU_NAME``). Untested: no TPU was at hand.

The conventions of a run (``docs/distributed.md``):

* ``--batch-size`` is per replica; the global batch is ``batch_size · num_replicas_in_sync``
  (:func:`global_batch_size`), as in TF's guides, so that adding devices keeps each one's memory.
* Only the chief writes into ``--out``; every other worker writes the same files into a
  temporary folder of its own (:func:`write_dir`), which it removes at the end. That is Keras'
  documented pattern: saving may run collective ops, so every worker must save.
* Every worker restores from the chief's backup (on a shared filesystem across machines).

Keras 3 (3.15) does not run ``MultiWorkerMirroredStrategy`` out of the box (keras-team/keras#20585):
:func:`patch_multi_worker` works around the two failures.
"""

from __future__ import annotations

import contextlib
import json
import os
import types
from collections.abc import Callable, Iterator
from typing import Any

import keras
import tensorflow as tf


def _tpu() -> tf.distribute.Strategy:
    # The resolver finds the TPU from TPU_NAME (or the Cloud TPU VM it runs on) and raises
    # ValueError when there is none.
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME"))
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _multi_worker() -> tf.distribute.Strategy:
    if "TF_CONFIG" not in os.environ:
        raise ValueError(
            "strategy 'multiworker' needs TF_CONFIG (the cluster and this task), see "
            "docs/distributed.md"
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


STRATEGIES: dict[str, Callable[[], tf.distribute.Strategy]] = {
    "default": tf.distribute.get_strategy,
    "mirrored": tf.distribute.MirroredStrategy,
    "multiworker": _multi_worker,
    "tpu": _tpu,
}
"""Name → builder of the ``tf.distribute.Strategy`` (module docstring)."""


def get_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy called ``name`` in :data:`STRATEGIES`, built (``multiworker``: from
    ``TF_CONFIG``, which must be set before TensorFlow creates its first tensor)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose from {sorted(STRATEGIES)}")
    return STRATEGIES[name]()


def tf_config() -> dict[str, Any]:
    """``TF_CONFIG`` as a dict (``{}`` when unset); ``ValueError`` naming it when malformed."""
    text = os.environ.get("TF_CONFIG") or "{}"
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err}): {text[:200]!r}") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object with 'cluster' and 'task': {text!r}")
    return config


def task() -> tuple[str, int]:
    """``(type, index)`` of this process in ``TF_CONFIG``; ``("chief", 0)`` without it."""
    entry = tf_config().get("task") or {}
    try:
        return str(entry.get("type", "chief")), int(entry.get("index", 0))
    except (AttributeError, TypeError, ValueError):
        message = f"TF_CONFIG 'task' must be {{'type': ..., 'index': N}}, got {entry!r}"
        raise ValueError(message) from None


def is_chief() -> bool:
    """Whether this process writes the run's outputs: the ``chief`` task, or worker 0 of a
    cluster without one (TF's rule), or a process without ``TF_CONFIG``."""
    kind, index = task()
    cluster = tf_config().get("cluster") or {}
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)


def write_dir(out: str) -> str:
    """Where this process writes: ``out`` for the chief, ``out/workertemp_{index}`` for another
    worker (Keras' multi-worker pattern; the worker removes it when the run ends)."""
    if is_chief():
        return out
    return os.path.join(out, f"workertemp_{task()[1]}")


def global_batch_size(batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """Images per optimizer step: ``batch_size`` (per replica) times the replicas in sync."""
    return batch_size * strategy.num_replicas_in_sync


PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
"""Keras dtype policies of ``--precision``. With ``mixed_float16``, ``model.compile`` wraps the
optimizer in ``keras.optimizers.LossScaleOptimizer`` (dynamic loss scaling); Keras'
``SwapEMAWeights`` reaches the EMA of the inner optimizer through it."""


@contextlib.contextmanager
def precision_policy(name: str) -> Iterator[None]:
    """Build models under the Keras dtype policy ``name`` (:data:`PRECISIONS`), restored after.

    Layers compute in float16/bfloat16 and keep float32 variables; the loss casts the heads to
    float32.
    """
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; choose from {PRECISIONS}")
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """Whether ``strategy`` spans several processes (its input is sharded per worker)."""
    return strategy.extended._in_multi_worker_mode()  # TF's own test of the same (private)


def _replica_spec(spec: tf.TypeSpec) -> tf.TypeSpec:
    """The spec of one replica's batch (a worker with several devices has per-replica specs)."""
    return spec._value_specs[0] if hasattr(spec, "_value_specs") else spec


def patch_multi_worker(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Let ``model.fit`` / ``evaluate`` run under a multi-worker strategy (keras-team/keras#20585).

    Keras 3.15 fails there twice: (1) its symbolic build (variables of the metrics and the
    optimizer, created before the first step) reduces the first batch, a nested structure, with
    one ``strategy.reduce`` call, which the collective ops refuse. Only shapes and dtypes are
    needed: this build reads them from the dataset's element spec, without starting an
    iteration (which would also reshuffle the data once more than a single process does, so the
    runs would not see the same batches). (2) Keras averages each replica's logs with
    ``strategy.reduce("MEAN", v, axis=0)``, which fails on scalars; the steps here return every
    log as a ``(1,)`` tensor, whose mean over that axis and the replicas is the mean over replicas
    Keras means. A no-op for other strategies.
    """
    if not is_multi_worker(strategy):
        return

    def symbolic_build(self: keras.Model, iterator: Any = None, data_batch: Any = None) -> None:
        if iterator is not None:
            # Keras' TFEpochIterator keeps the distributed dataset in a private attribute.
            spec = iterator._distributed_dataset.element_spec
            data_batch = tf.nest.map_structure(_replica_spec, spec)
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = types.MethodType(symbolic_build, model)
    for name in ("train_step", "test_step"):
        step = getattr(model, name)

        def vector_logs(data: Any, step: Callable[[Any], dict] = step) -> dict[str, Any]:
            return tf.nest.map_structure(lambda value: tf.reshape(value, [1]), step(data))

        setattr(model, name, vector_logs)


def distribute_dataset(
    strategy: tf.distribute.Strategy,
    make: Callable[[tf.distribute.InputContext | None], tf.data.Dataset],
) -> tf.data.Dataset | tf.distribute.DistributedDataset:
    """The input of ``model.fit`` under ``strategy``.

    ``make(input_context)`` builds a dataset batched by the global batch
    (:func:`kyolo.data.pipeline.make_dataset` takes ``input_context``). Under a multi-worker
    strategy every worker builds its own shard (``distribute_datasets_from_function``), so no
    worker reads the others' images; otherwise ``make(None)``, whose batches Keras splits over
    this machine's replicas.
    """
    if is_multi_worker(strategy):
        return strategy.distribute_datasets_from_function(make)
    return make(None)
