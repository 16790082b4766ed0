"""Per-component loss values as a Keras metric, for progress bars and TensorBoard."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from kyolo.losses import YoloLoss


@keras.saving.register_keras_serializable(package="kyolo")
class YoloLossComponents(keras.metrics.Metric):
    """Running mean per image of each term of one scale's :class:`YoloLoss`.

    ``model.compile(loss=losses, metrics=[[YoloLossComponents(loss)] for loss in losses])`` logs
    ``{name}_{key}`` per epoch for each key of the loss's ``component_names`` (``xy, wh, obj,
    cls`` for keras-yolo3, ``box, obj, cls`` for the IoU losses); their sum equals the scale's
    loss. It evaluates the loss terms a second time, so it costs one extra loss
    forward pass per step.

    Args:
        loss: the scale's loss, or its ``get_config()``.
        name: prefix of the logged values; default ``f"s{scale}"``.
    """

    def __init__(self, loss: YoloLoss | dict[str, Any], name: str | None = None, **kwargs: Any):
        self.loss = loss if isinstance(loss, YoloLoss) else YoloLoss.from_config(loss)
        super().__init__(name=name or f"s{self.loss.scale}", **kwargs)
        self.totals = {
            key: self.add_variable(shape=(), initializer="zeros", name=key)
            for key in self.loss.component_names
        }
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(
        self, y_true: tf.Tensor, y_pred: tf.Tensor, sample_weight: tf.Tensor | None = None
    ) -> None:
        for key, values in self.loss.components(y_true, y_pred).items():
            self.totals[key].assign_add(tf.reduce_sum(values))
        self.count.assign_add(tf.cast(tf.shape(y_pred)[0], tf.float32))

    def result(self) -> dict[str, tf.Tensor]:
        return {
            f"{self.name}_{key}": tf.math.divide_no_nan(total, self.count)
            for key, total in self.totals.items()
        }

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "loss": self.loss.get_config()}
