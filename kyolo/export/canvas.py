"""The detection graph that TFLite and ONNX take: one letterboxed canvas in, boxes and heads out.

Converters handle fixed shapes and a few image ops, so this graph starts *after* the letterbox
(:func:`kyolo.geometry.letterbox`, done by the caller: :mod:`kyolo.export.runtime` does it) and
runs on one image:

- inputs: ``images (1, H, W, 3)`` float32 in [0, 1], the canvas at ``cfg.input_size``;
  ``score_threshold`` and ``iou_threshold``, float32 scalars;
- outputs: ``boxes (1, D, 4)`` xyxy in *canvas* pixels, ``scores (1, D)``, ``classes (1, D)``
  int32, ``count (1,)`` (rows past it are 0), and the raw heads ``scale_0 ...``.

Per-class NMS is :func:`kyolo.postprocess.class_offset_nms` (``NonMaxSuppressionV4``, a TFLite
builtin; ONNX ``NonMaxSuppression``), equal to the SavedModel's combined NMS.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from kyolo.config import YoloConfig
from kyolo.decode import check_head_channels
from kyolo.postprocess import DEFAULT_NMS, candidates, class_offset_nms

POSTPROCESS_SCOPE = "postprocess"
"""Name scope of the ops after the heads (decode, NMS): int8 export keeps them float."""


def canvas_signature(cfg: YoloConfig) -> list[tf.TensorSpec]:
    """``[images (1, H, W, 3) float32, score_threshold (), iou_threshold ()]``."""
    return [
        tf.TensorSpec([1, *cfg.input_size, 3], tf.float32, name="images"),
        tf.TensorSpec([], tf.float32, name="score_threshold"),
        tf.TensorSpec([], tf.float32, name="iou_threshold"),
    ]


def canvas_function(
    model: keras.Model, cfg: YoloConfig, max_detections: int = DEFAULT_NMS["max_detections"]
):
    """``detect(images, score_threshold, iou_threshold)`` → the module docstring's outputs."""
    check_head_channels([output.shape for output in model.outputs], cfg)

    def detect(
        images: tf.Tensor, score_threshold: tf.Tensor, iou_threshold: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        outputs = model(images, training=False)
        with tf.name_scope(POSTPROCESS_SCOPE):
            boxes, scores = candidates(outputs, cfg)
            found = class_offset_nms(
                boxes[0],
                scores[0],
                max_detections=max_detections,
                iou_threshold=iou_threshold,
                score_threshold=score_threshold,
            )
        heads = {f"scale_{s}": output for s, output in enumerate(outputs)}
        return {**{key: value[None] for key, value in found.items()}, **heads}

    return detect


def write_canvas_saved_model(
    model: keras.Model,
    cfg: YoloConfig,
    path: str | os.PathLike,
    max_detections: int = DEFAULT_NMS["max_detections"],
) -> None:
    """The canvas graph as a SavedModel (``serving_default``), the TFLite converter's input."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default",
        fn=canvas_function(model, cfg, max_detections),
        input_signature=canvas_signature(cfg),
    )
    archive.write_out(os.fspath(path), verbose=False)
