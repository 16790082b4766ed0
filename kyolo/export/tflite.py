"""TFLite export with builtin ops only (no Flex): the canvas graph of :mod:`kyolo.export.canvas`.

The letterbox stays outside the model (scale by ``s = min(H / h, W / w)``, centre on grey 0.5,
pads ``floor((H − round(h·s)) / 2)``: :func:`kyolo.geometry.letterbox`), and so does mapping the
boxes back (:func:`kyolo.geometry.unletterbox_boxes`); :class:`kyolo.export.runtime.Detector`
does both. Quantization (:data:`QUANTIZATIONS`): ``float16`` weights, or ``int8`` weights and
activations calibrated on a representative dataset of training canvases (ops without an int8
kernel stay float, and so do decode and NMS, see :func:`_int8`).

Config and class names are stored in the flatbuffer's metadata under the name
:data:`METADATA_NAME` (the :func:`kyolo.saving.metadata_json` text); :func:`read_tflite_metadata`
reads them.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from kyolo.config import YoloConfig
from kyolo.export.canvas import POSTPROCESS_SCOPE, write_canvas_saved_model
from kyolo.postprocess import DEFAULT_NMS
from kyolo.saving import atomic_path, metadata_json, read_metadata_json

METADATA_NAME = "kyolo"


def _converter(saved_model: str) -> tf.lite.TFLiteConverter:
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def _float32(saved_model: str, calibration: Sequence[np.ndarray] | None) -> bytes:
    del calibration
    return _converter(saved_model).convert()


def _float16(saved_model: str, calibration: Sequence[np.ndarray] | None) -> bytes:
    del calibration
    converter = _converter(saved_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def _int8(saved_model: str, calibration: Sequence[np.ndarray] | None) -> bytes:
    """int8 weights and activations up to the heads; decode and NMS stay float32.

    Quantizing the decode collapses boxes (8 bits cannot hold both a logit's range and the
    sigmoid's detail), so every op of :data:`~kyolo.export.canvas.POSTPROCESS_SCOPE` is
    denylisted through TFLite's (experimental) selective quantization.
    """
    if not calibration:
        raise ValueError("int8 quantization needs calibration images (a representative dataset)")
    thresholds = {
        "score_threshold": np.float32(DEFAULT_NMS["score_threshold"]),
        "iou_threshold": np.float32(DEFAULT_NMS["iou_threshold"]),
    }

    def representative_dataset():
        for canvas in calibration:
            yield {"images": np.asarray(canvas, np.float32)[None], **thresholds}

    float_model = tf.lite.Interpreter(model_content=_float32(saved_model, None))
    postprocess = sorted(
        {
            tensor["name"]
            for tensor in float_model.get_tensor_details()
            if tensor["name"].startswith(f"{POSTPROCESS_SCOPE}/")
        }
    )
    converter = _converter(saved_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=representative_dataset,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=postprocess),
    )
    return debugger.get_nondebug_quantized_model()


QUANTIZATIONS: dict[str, Callable[[str, Sequence[np.ndarray] | None], bytes]] = {
    "float32": _float32,
    "float16": _float16,
    "int8": _int8,
}
"""``--quantize`` choice → ``convert(saved_model folder, calibration canvases)`` → flatbuffer."""


def export_tflite(
    model: keras.Model,
    cfg: YoloConfig,
    path: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    quantize: str = "float32",
    calibration: Sequence[np.ndarray] | None = None,
    max_detections: int = DEFAULT_NMS["max_detections"],
) -> str:
    """Write a ``.tflite`` of the canvas graph with builtin ops only; returns ``path``.

    Args:
        quantize: a key of :data:`QUANTIZATIONS`.
        calibration: ``int8`` only: ``(H, W, 3)`` float32 letterboxed training canvases in
            [0, 1], the representative dataset (:func:`calibration_canvases`).
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZATIONS)}, got {quantize!r}")
    with tempfile.TemporaryDirectory() as folder:
        write_canvas_saved_model(model, cfg, folder, max_detections)
        flatbuffer = QUANTIZATIONS[quantize](folder, calibration)
    flatbuffer = with_metadata(flatbuffer, metadata_json(cfg, class_names))
    with atomic_path(path) as temp, open(temp, "wb") as f:
        f.write(flatbuffer)
    return os.fspath(path)


def calibration_canvases(
    image_paths: Sequence[str], cfg: YoloConfig, count: int
) -> list[np.ndarray]:
    """The first ``count`` images letterboxed to ``cfg.input_size`` as training sees them
    (no augmentation): ``(H, W, 3)`` float32 in [0, 1], int8 export's representative dataset."""
    from kyolo.data.pipeline import decode_image
    from kyolo.geometry import letterbox

    canvases = []
    for path in list(image_paths)[:count]:
        image = decode_image(tf.io.read_file(path))
        canvases.append(letterbox(image, tf.zeros([0, 4]), cfg.input_size)[0].numpy())
    return canvases


def with_metadata(flatbuffer: bytes, text: str) -> bytes:
    """``flatbuffer`` with ``text`` added as the metadata entry :data:`METADATA_NAME`."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(text.encode("utf-8"), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_tflite_metadata(flatbuffer: bytes, source: str) -> tuple[YoloConfig, list[str]]:
    """``(config, class names)`` stored by :func:`export_tflite`; ``source`` names it in errors."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAs(flatbuffer, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name().decode() == METADATA_NAME:
            data = model.Buffers(entry.Buffer()).DataAsNumpy()
            return read_metadata_json(data.tobytes(), source)
    raise ValueError(f"{source}: a .tflite without kyolo metadata")


def tflite_interpreter(path: str | os.PathLike) -> tf.lite.Interpreter:
    """``tf.lite.Interpreter`` of ``path`` (its deprecation notice, pointing to LiteRT, muted)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        return tf.lite.Interpreter(model_path=os.fspath(path))
