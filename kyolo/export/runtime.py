"""Run any kyolo model on images: ``load_detector(path)(image)`` → boxes in image pixels.

``path`` may be a training run folder or a ``.keras`` (with its metadata), a SavedModel folder,
a ``.tflite`` or a ``.onnx`` (:data:`LOADERS`; :func:`model_format` tells which). Every
:class:`Detector` takes one ``(h, w, 3)`` uint8 image and returns numpy arrays of its
detections, best score first; TFLite and ONNX get the letterbox done here (their graphs start at
the canvas, :mod:`kyolo.export.canvas`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from kyolo.config import YoloConfig
from kyolo.export.saved_model import SERVING_THRESHOLDS
from kyolo.geometry import letterbox, unletterbox_boxes

Run = Callable[[np.ndarray, float, float], dict[str, np.ndarray]]
"""``run(image (h, w, 3) uint8, score_threshold, iou_threshold)`` → padded detections of the
image: ``boxes (D, 4)`` xyxy image pixels, ``scores (D,)``, ``classes (D,)``, ``count ()``."""


@dataclasses.dataclass(frozen=True)
class Detector:
    """A loaded model: ``detector(image)`` → ``{"boxes" (n, 4), "scores" (n,), "classes" (n,)}``.

    Boxes are xyxy float32 pixels of ``image`` (an ``(h, w, 3)`` uint8 array), classes int32 ids
    into ``class_names``; ``n`` ≤ 100 detections above ``score_threshold``.
    """

    run: Run
    config: YoloConfig
    class_names: list[str]
    format: str

    def __call__(
        self,
        image: np.ndarray,
        score_threshold: float = SERVING_THRESHOLDS["score_threshold"],
        iou_threshold: float = SERVING_THRESHOLDS["iou_threshold"],
    ) -> dict[str, np.ndarray]:
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"need one (h, w, 3) uint8 image, got {image.dtype} {image.shape}")
        found = self.run(image, float(score_threshold), float(iou_threshold))
        count = int(found["count"])
        return {
            "boxes": np.asarray(found["boxes"][:count], np.float32),
            "scores": np.asarray(found["scores"][:count], np.float32),
            "classes": np.asarray(found["classes"][:count], np.int32),
        }


def model_format(path: str | os.PathLike) -> str:
    """The key of :data:`LOADERS` for ``path``; ``ValueError`` naming it when none fits."""
    path = os.fspath(path)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            return "saved_model"
        if os.path.isfile(os.path.join(path, "model.keras")):
            return "keras"
        raise ValueError(f"{path}: neither a SavedModel nor a training run (no model.keras)")
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file or folder")
    extension = os.path.splitext(path)[1].lower()
    formats = {".keras": "keras", ".tflite": "tflite", ".onnx": "onnx"}
    if extension not in formats:
        raise ValueError(f"{path}: not a .keras, .tflite, .onnx, SavedModel or run folder")
    return formats[extension]


def load_detector(path: str | os.PathLike) -> Detector:
    """The :class:`Detector` of the model at ``path``, whatever its format."""
    kind = model_format(path)
    return LOADERS[kind](os.fspath(path))


def _load_keras(path: str) -> Detector:
    from kyolo.export.saved_model import serving_function
    from kyolo.saving import load_trained

    model, cfg, names = load_trained(path)
    serve = tf.function(serving_function(model, cfg), reduce_retracing=True)
    return Detector(_batch_of_one(serve), cfg, names, "keras")


def _load_saved_model(path: str) -> Detector:
    from kyolo.export.saved_model import read_saved_model_metadata

    loaded = tf.saved_model.load(path)
    cfg, names = read_saved_model_metadata(loaded, path)
    # The lambda holds ``loaded``, the owner of the variables that ``serve`` reads.
    return Detector(_batch_of_one(lambda *args: loaded.serve(*args)), cfg, names, "saved_model")


def _batch_of_one(serve) -> Run:
    def run(image: np.ndarray, score_threshold: float, iou_threshold: float):
        found = serve(tf.constant(image), tf.constant(score_threshold), tf.constant(iou_threshold))
        return {key: value.numpy()[0] for key, value in found.items()}

    return run


def _load_tflite(path: str) -> Detector:
    from kyolo.export.tflite import read_tflite_metadata, tflite_interpreter

    with open(path, "rb") as f:
        cfg, names = read_tflite_metadata(f.read(), path)
    runner = tflite_interpreter(path).get_signature_runner()
    return Detector(_on_canvas(lambda feeds: runner(**feeds), cfg), cfg, names, "tflite")


def _load_onnx(path: str) -> Detector:
    from kyolo.export.onnx import onnx_session, read_onnx_metadata

    session = onnx_session(path)
    cfg, names = read_onnx_metadata(path)
    wanted = ["boxes", "scores", "classes", "count"]

    def infer(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(wanted, session.run(wanted, feeds), strict=True))

    return Detector(_on_canvas(infer, cfg), cfg, names, "onnx")


def _on_canvas(infer: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], cfg) -> Run:
    """A :data:`Run` around a canvas graph: letterbox in, boxes back to the image's pixels."""

    def run(image: np.ndarray, score_threshold: float, iou_threshold: float):
        canvas, _, (ratio, pad_y, pad_x) = letterbox(image, tf.zeros([0, 4]), cfg.input_size)
        found = infer(
            {
                "images": canvas.numpy()[None],
                "score_threshold": np.array(score_threshold, np.float32),
                "iou_threshold": np.array(iou_threshold, np.float32),
            }
        )
        found = {key: np.asarray(value)[0] for key, value in found.items()}
        height, width = image.shape[:2]
        boxes = unletterbox_boxes(found["boxes"], ratio, pad_y, pad_x).numpy()
        found["boxes"] = np.clip(boxes, 0.0, [width, height, width, height])
        return found

    return run


LOADERS: dict[str, Callable[[str], Detector]] = {
    "keras": _load_keras,
    "saved_model": _load_saved_model,
    "tflite": _load_tflite,
    "onnx": _load_onnx,
}
"""Model format → loader; :func:`model_format` picks the key from the path."""


def detection_records(found: dict[str, np.ndarray], class_names: list[str]) -> list[dict]:
    """A :class:`Detector` result as JSON-ready rows ``{"class", "name", "score", "box"}``
    (``box``: xyxy image pixels), best score first."""
    return [
        {
            "class": int(cls),
            "name": class_names[int(cls)],
            "score": round(float(score), 5),
            "box": [round(float(v), 2) for v in box],
        }
        for box, score, cls in zip(found["boxes"], found["scores"], found["classes"], strict=True)
    ]
