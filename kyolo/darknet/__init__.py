"""Darknet interoperability: ``.cfg`` parse and write, Keras build, ``.weights`` read and write.

    sections = read_cfg("yolov3.cfg")                    # kyolo.darknet.cfg
    darknet = build_darknet(sections)                    # model, convs (file order), YoloConfig
    header = load_darknet_weights(darknet.model, darknet.convs, "yolov3.weights")
    save_darknet_weights(darknet.model, darknet.convs, "copy.weights", header)  # byte-identical

:func:`convert` does cfg + weights → ``.keras`` in one call (``python -m training.convert``), and
:func:`write_cfg` writes the standard YOLOv3 topologies as cfg text.
"""

from kyolo.darknet.build import DARKNET_BN_EPSILON, ConvLayer, DarknetModel, build_darknet
from kyolo.darknet.cfg import CfgError, Section, format_cfg, parse_cfg, read_cfg
from kyolo.darknet.convert import convert, load_darknet
from kyolo.darknet.kyolo_models import KYOLO_LAYOUTS, as_kyolo_model
from kyolo.darknet.topologies import TOPOLOGIES, write_cfg
from kyolo.darknet.weights import (
    ConvWeights,
    Header,
    load_darknet_weights,
    read_weights,
    save_darknet_weights,
    write_weights,
)

__all__ = [
    "DARKNET_BN_EPSILON",
    "KYOLO_LAYOUTS",
    "TOPOLOGIES",
    "CfgError",
    "ConvLayer",
    "ConvWeights",
    "DarknetModel",
    "Header",
    "Section",
    "as_kyolo_model",
    "build_darknet",
    "convert",
    "format_cfg",
    "load_darknet",
    "load_darknet_weights",
    "parse_cfg",
    "read_cfg",
    "read_weights",
    "save_darknet_weights",
    "write_cfg",
    "write_weights",
]
