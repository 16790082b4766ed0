"""ONNX export of the canvas graph (:mod:`kyolo.export.canvas`) with ``tf2onnx``.

Optional: ``pip install -e ".[onnx]"`` (tf2onnx, onnx, onnxruntime). Same inputs and outputs as
the TFLite model, letterbox outside; config and class names are the model's metadata property
:data:`METADATA_KEY` (``onnxruntime``: ``session.get_modelmeta().custom_metadata_map``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from kyolo.config import YoloConfig
from kyolo.export.canvas import canvas_function, canvas_signature
from kyolo.postprocess import DEFAULT_NMS
from kyolo.saving import atomic_path, metadata_json, read_metadata_json

METADATA_KEY = "kyolo"
OPSET = 17


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f'ONNX export and inference need {module}: pip install -e ".[onnx]"'
        ) from None


def export_onnx(
    model: keras.Model,
    cfg: YoloConfig,
    path: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    max_detections: int = DEFAULT_NMS["max_detections"],
    opset: int = OPSET,
) -> str:
    """Write a ``.onnx`` of the canvas graph (opset ``opset``); returns ``path``."""
    tf2onnx = _require("tf2onnx")
    onnx = _require("onnx")
    function = tf.function(
        canvas_function(model, cfg, max_detections), input_signature=canvas_signature(cfg)
    )
    proto, _ = tf2onnx.convert.from_function(
        function, input_signature=canvas_signature(cfg), opset=opset
    )
    onnx.helper.set_model_props(proto, {METADATA_KEY: metadata_json(cfg, class_names)})
    with atomic_path(path) as temp:
        onnx.save(proto, temp)
    return os.fspath(path)


def onnx_session(path: str | os.PathLike):
    """An ``onnxruntime.InferenceSession`` on the CPU."""
    onnxruntime = _require("onnxruntime")
    return onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])


def read_onnx_metadata(path: str | os.PathLike) -> tuple[YoloConfig, list[str]]:
    """``(config, class names)`` stored by :func:`export_onnx`."""
    onnx = _require("onnx")
    proto = onnx.load(os.fspath(path), load_external_data=False)
    props = {prop.key: prop.value for prop in proto.metadata_props}
    if METADATA_KEY not in props:
        raise ValueError(f"{path}: an .onnx without kyolo metadata")
    return read_metadata_json(props[METADATA_KEY], os.fspath(path))
