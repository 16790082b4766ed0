"""Keras callbacks specific to detection training."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from kyolo.config import YoloConfig
from kyolo.evaluate import evaluate_detector
from kyolo.postprocess import detect


class CocoMeanAveragePrecision(keras.callbacks.Callback):
    """Adds ``val_mAP50`` and ``val_mAP50_95`` (pycocotools) to the epoch logs.

    Place it *before* ``ModelCheckpoint``, ``TensorBoard`` and ``CSVLogger`` in the callback list
    so that they see the values. Epochs it skips (see ``frequency``) carry the last values, and
    ``val_mAP_epoch`` says which (0-based) epoch they were measured at.

    Args:
        dataset: validation data from ``kyolo.data.pipeline.make_dataset(..., encode=None)``.
        cfg: the head configuration.
        frequency: evaluate every this many epochs, and always at the last epoch.
        nms_args: passed to :func:`kyolo.postprocess.non_max_suppression` (whose defaults are
            the exporter's too, so the SavedModel reproduces these numbers).
    """

    def __init__(
        self, dataset: tf.data.Dataset, cfg: YoloConfig, frequency: int = 1, **nms_args: Any
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.cfg = cfg
        self.frequency = max(1, int(frequency))
        self.nms_args = nms_args
        self.last: dict[str, float] = {}
        self._detect = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._epochs = self.params.get("epochs") if self.params else None

        @tf.function(reduce_retracing=True)
        def run(images: tf.Tensor) -> dict[str, tf.Tensor]:
            return detect(self.model(images, training=False), self.cfg, **self.nms_args)

        self._detect = run

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        last_epoch = self._epochs is not None and epoch + 1 >= self._epochs
        if (epoch + 1) % self.frequency == 0 or last_epoch or not self.last:
            result = evaluate_detector(self._detect, self.dataset, self.cfg.num_classes)
            self.last = {f"val_{key}": value for key, value in result.items()}
            self.last["val_mAP_epoch"] = float(epoch)
        if logs is not None:
            logs.update(self.last)
