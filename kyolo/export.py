"""Export a trained model as a SavedModel that serves boxes (letterbox + decode + NMS inside)."""

from __future__ import annotations

import os
from typing import Any

import keras
import tensorflow as tf

from kyolo.config import YoloConfig
from kyolo.geometry import letterbox, unletterbox_boxes
from kyolo.postprocess import detect

SERVING_INPUT = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")


def serving_function(model: keras.Model, cfg: YoloConfig, **nms_args: Any):
    """``images (b, h, w, 3) uint8`` (one size per batch, any size) → detections dict.

    Returns a function giving ``boxes (b, D, 4)`` xyxy in the *input image's* pixels (clipped to
    it), ``scores (b, D)``, ``classes (b, D)`` int32 and ``count (b,)``; rows past ``count`` are 0.
    """

    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        no_boxes = tf.zeros([0, 4], tf.float32)
        canvases, boxes_unused, (ratio, pad_y, pad_x) = tf.map_fn(
            lambda image: letterbox(image, no_boxes, cfg.input_size),
            images,
            fn_output_signature=(
                tf.TensorSpec([*cfg.input_size, 3], tf.float32),
                tf.TensorSpec([None, 4], tf.float32),
                (tf.TensorSpec([], tf.float32),) * 3,
            ),
        )
        del boxes_unused
        detections = detect(model(canvases, training=False), cfg, **nms_args)
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
    model: keras.Model, cfg: YoloConfig, path: str | os.PathLike, **nms_args: Any
) -> None:
    """Write a SavedModel whose ``serving_default`` is :func:`serving_function`."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default",
        fn=serving_function(model, cfg, **nms_args),
        input_signature=[SERVING_INPUT],
    )
    archive.write_out(str(path), verbose=False)
