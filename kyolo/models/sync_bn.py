"""BatchNormalization whose batch statistics span every replica of a ``tf.distribute`` strategy.

Keras' ``BatchNormalization(synchronized=True)`` all-reduces ``Σx`` and ``Σx²`` and takes the
variance as ``E[x²] − E[x]²``. Its forward pass is fine, but the gradient of that difference
cancels: on the nano model at 64 px (8 random images, float32) it is 1.1e-2 off a float64
reference (relative to the tensor's largest gradient), while plain BatchNorm is 4.2e-6 off, so a
multi-replica step does not take the one-device step.
:class:`SyncBatchNormalization` takes two passes, as ``tf.nn.moments`` does: the global mean
first, then the mean squared deviation from it. The same three all-reduces per layer, the third
after the first, buy the one-device gradient (``docs/distributed.md`` has the figures).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf


def synchronized_moments(x: tf.Tensor, axes: Sequence[int]) -> tuple[tf.Tensor, tf.Tensor]:
    """Mean and (biased) variance of ``x`` over ``axes`` and over all replicas in sync.

    Args:
        x: a float tensor, e.g. ``(batch, h, w, channels)``, this replica's share of the batch.
        axes: the axes reduced, e.g. ``[0, 1, 2]``; the others are kept.

    Returns:
        ``(mean, variance)``, each of ``x``'s shape without ``axes``; identical on every replica.
        In a cross-replica context (no replica to synchronise with) ``tf.nn.moments(x, axes)``.
    """
    context = tf.distribute.get_replica_context()
    if context is None:
        return tf.nn.moments(x, axes)
    axes = list(axes)
    count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes)), x.dtype)
    # One all-reduce per tensor, as Keras' layer does: NCCL may not batch them in the same order
    # on every replica (keras/src/backend/tensorflow/nn.py).
    total = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(x, axes, keepdims=True))
    count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
    # divide_no_nan: a replica may hold an empty final batch; all of them never do.
    mean = tf.math.divide_no_nan(total, count)
    # The mean's gradient through the variance is zero (Σ(x − mean) = 0 over all replicas);
    # stopping it, as tf.nn.moments does, keeps the backward pass free of that cancellation.
    squares = tf.reduce_sum(tf.square(x - tf.stop_gradient(mean)), axes, keepdims=True)
    variance = tf.math.divide_no_nan(context.all_reduce(tf.distribute.ReduceOp.SUM, squares), count)
    return tf.squeeze(mean, axes), tf.squeeze(variance, axes)


@keras.saving.register_keras_serializable(package="kyolo")
class SyncBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with :func:`synchronized_moments` in training.

    Same arguments and weights as the Keras layer (``synchronized`` is always True); inference
    uses the moving statistics as usual. With one replica it is plain BatchNorm.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "synchronized": True})

    def _moments(self, inputs: tf.Tensor, mask: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor]:
        if mask is not None:
            raise ValueError(f"{self.name}: SyncBatchNormalization does not support masks")
        return synchronized_moments(inputs, self._reduction_axes)


def synchronized_batch_norm(model: keras.Model) -> keras.Model:
    """``model`` (functional) with every ``BatchNormalization`` a :class:`SyncBatchNormalization`,
    same layer names and weights."""

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, keras.layers.BatchNormalization):
            return SyncBatchNormalization.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    synced = keras.models.clone_model(model, clone_function=clone)
    synced.set_weights(model.get_weights())
    return synced
