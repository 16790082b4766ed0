"""SavedModel that serves boxes: letterbox + model + decode + per-class NMS inside the graph.

The loaded object (``loaded = tf.saved_model.load(path)``) offers:

- ``loaded.serve(images, score_threshold=0.25, iou_threshold=0.45)``: ``images`` uint8, one
  ``(h, w, 3)`` image or a ``(b, h, w, 3)`` batch (one size per batch, any size); thresholds are
  optional float32 scalars. Returns a dict, always with a batch axis: ``boxes (b, D, 4)`` xyxy in
  the *input image's* pixels (clipped to it), ``scores (b, D)``, ``classes (b, D)`` int32 and
  ``count (b,)``; rows past ``count`` are 0, ``D = max_detections``.
- ``loaded.signatures["serving_default"](images=...)``: the same with the default thresholds
  (signatures cannot have optional inputs; TF Serving calls this one);
  ``loaded.signatures["serve"](images=..., score_threshold=..., iou_threshold=...)``: all explicit.
- ``loaded.metadata()``: a string tensor, the JSON of :func:`kyolo.saving.metadata_json` (config and
  class names); :func:`read_saved_model_metadata` parses it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
import tensorflow as tf

from kyolo.config import YoloConfig
from kyolo.decode import check_head_channels
from kyolo.geometry import letterbox, unletterbox_boxes
from kyolo.postprocess import DEFAULT_NMS, detect
from kyolo.saving import metadata_json, read_metadata_json

SERVING_THRESHOLDS = {"score_threshold": 0.25, "iou_threshold": 0.45}
"""Thresholds a served model applies unless told otherwise: boxes worth showing. (Evaluation
passes COCO's 0.001 and 0.5, :data:`kyolo.postprocess.DEFAULT_NMS`.)"""

IMAGES = tf.TensorSpec(None, tf.uint8, name="images")
SCORE = tf.TensorSpec([], tf.float32, name="score_threshold")
IOU = tf.TensorSpec([], tf.float32, name="iou_threshold")


def serving_function(
    model: keras.Model, cfg: YoloConfig, max_detections: int = DEFAULT_NMS["max_detections"]
):
    """``serve(images, score_threshold, iou_threshold)`` → detections dict (module docstring).

    ``images``: ``(h, w, 3)`` or ``(b, h, w, 3)`` uint8; the thresholds are float32 scalars.
    """
    check_head_channels([output.shape for output in model.outputs], cfg)

    def serve(images: tf.Tensor, score_threshold: tf.Tensor, iou_threshold: tf.Tensor):
        shape = tf.shape(images)
        # One image or a batch: the last three axes are (h, w, 3) either way.
        images = tf.reshape(images, tf.concat([[-1], shape[-3:]], axis=0))
        images = tf.ensure_shape(images, [None, None, None, 3])
        no_boxes = tf.zeros([0, 4], tf.float32)
        canvases, _, (ratio, pad_y, pad_x) = tf.map_fn(
            lambda image: letterbox(image, no_boxes, cfg.input_size),
            images,
            fn_output_signature=(
                tf.TensorSpec([*cfg.input_size, 3], tf.float32),
                tf.TensorSpec([None, 4], tf.float32),
                (tf.TensorSpec([], tf.float32),) * 3,
            ),
        )
        detections = detect(
            model(canvases, training=False),
            cfg,
            max_detections=max_detections,
            score_threshold=score_threshold,
            iou_threshold=iou_threshold,
        )
        boxes = unletterbox_boxes(
            detections["boxes"], ratio[:, None], pad_y[:, None], pad_x[:, None]
        )
        height = tf.cast(tf.shape(images)[1], tf.float32)
        width = tf.cast(tf.shape(images)[2], tf.float32)
        boxes = tf.clip_by_value(boxes, 0.0, tf.stack([width, height, width, height]))
        valid = tf.sequence_mask(detections["count"], tf.shape(boxes)[1])
        return {**detections, "boxes": tf.where(valid[..., None], boxes, 0.0)}

    return serve


def export_saved_model(
    model: keras.Model,
    cfg: YoloConfig,
    path: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    score_threshold: float = SERVING_THRESHOLDS["score_threshold"],
    iou_threshold: float = SERVING_THRESHOLDS["iou_threshold"],
    max_detections: int = DEFAULT_NMS["max_detections"],
) -> str:
    """Write the SavedModel the module docstring describes; returns ``path``.

    ``score_threshold`` and ``iou_threshold`` are the defaults baked into ``serve`` and
    ``serving_default``; ``class_names`` and ``cfg`` are stored for ``loaded.metadata()``.
    """
    serve = serving_function(model, cfg, max_detections)
    defaults = (tf.constant(score_threshold, tf.float32), tf.constant(iou_threshold, tf.float32))

    def serve_with_defaults(images, score_threshold=defaults[0], iou_threshold=defaults[1]):
        return serve(images, score_threshold, iou_threshold)

    text = metadata_json(cfg, class_names)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default",
        fn=lambda images: serve(images, *defaults),
        input_signature=[IMAGES],
    )
    archive.add_endpoint(name="serve", fn=serve_with_defaults, input_signature=[IMAGES, SCORE, IOU])
    archive.add_endpoint(name="metadata", fn=lambda: tf.constant(text), input_signature=[])
    archive.write_out(str(path), verbose=False)
    return os.fspath(path)


def read_saved_model_metadata(loaded, source: str) -> tuple[YoloConfig, list[str]]:
    """``(config, class names)`` of a loaded kyolo SavedModel; ``source`` names it in errors."""
    if not hasattr(loaded, "metadata"):
        raise ValueError(f"{source}: a SavedModel without kyolo metadata (exported before it)")
    return read_metadata_json(loaded.metadata().numpy(), source)
