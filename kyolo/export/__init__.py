"""Export a trained detector (SavedModel, TFLite, ONNX) and run any export on images.

Every format carries the model's config and class names (:func:`kyolo.saving.metadata_json`) and
:func:`kyolo.export.runtime.load_detector` runs each of them the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from kyolo.export.onnx import export_onnx
from kyolo.export.saved_model import SERVING_THRESHOLDS, export_saved_model, serving_function
from kyolo.export.tflite import QUANTIZATIONS, export_tflite

EXPORTERS: dict[str, Callable[..., str]] = {
    "saved_model": export_saved_model,
    "tflite": export_tflite,
    "onnx": export_onnx,
}
"""Format → ``exporter(model, cfg, path, *, class_names=None, **options)``; returns the path."""

__all__ = [
    "EXPORTERS",
    "QUANTIZATIONS",
    "SERVING_THRESHOLDS",
    "export_onnx",
    "export_saved_model",
    "export_tflite",
    "serving_function",
]
