"""Standard YOLOv3 topologies written as Darknet cfg text by kyolo itself.

:func:`write_cfg` describes ``yolov3``, ``yolov3-tiny`` and ``yolov3-spp`` (Redmon & Farhadi 2018;
the SPP block of He et al. 2015 as Darknet adds it) for any class count, anchors and input size.
Layer ``i`` of the returned cfg is the ``i``-th section after ``[net]``, Darknet's and OpenCV's
numbering. Only the layers of the forward pass are written: no solver or augmentation keys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kyolo.config import YOLOV3, YOLOV3_TINY
from kyolo.darknet.cfg import format_cfg
from kyolo.models.yolov3 import DARKNET53_STAGES

Options = dict[str, Any]


class _Layers:
    """Sections under construction; each ``add_*`` returns the new layer's Darknet index."""

    def __init__(self, classes: int, anchors: Sequence[tuple[float, float]]) -> None:
        self.sections: list[tuple[str, Options]] = []
        self.classes = classes
        self.anchors = [f"{w:g},{h:g}" for w, h in anchors]

    def add(self, kind: str, **options: Any) -> int:
        self.sections.append((kind, options))
        return len(self.sections) - 1

    def conv(self, filters: int, size: int, stride: int = 1) -> int:
        return self.add(
            "convolutional",
            batch_normalize=1,
            filters=filters,
            size=size,
            stride=stride,
            pad=1,
            activation="leaky",
        )

    def head(self, mask: Sequence[int]) -> int:
        """The linear 1x1 conv to ``A · (5 + C)`` logits and its ``[yolo]`` section."""
        filters = len(mask) * (5 + self.classes)
        self.add("convolutional", size=1, stride=1, pad=1, filters=filters, activation="linear")
        return self.add(
            "yolo",
            mask=list(mask),
            anchors=", ".join(self.anchors),
            classes=self.classes,
            num=len(self.anchors),
            ignore_thresh=0.7,
        )

    def upsample_merge(self, source: int, filters: int, lateral: int) -> int:
        """Back to ``source`` (the last head conv), 1x1 conv, upsample x2, concat ``lateral``."""
        self.add("route", layers=source - len(self.sections))
        self.conv(filters, 1)
        self.add("upsample", stride=2)
        return self.add("route", layers=[-1, lateral])


def _net(input_size: tuple[int, int]) -> tuple[str, Options]:
    height, width = input_size
    return "net", {"width": width, "height": height, "channels": 3}


def _alternating(layers: _Layers, filters: int, count: int) -> int:
    """``count`` convs alternating 1x1 to ``filters`` and 3x3 to ``2 · filters``; the last one."""
    for i in range(count):
        last = layers.conv(filters, 1) if i % 2 == 0 else layers.conv(2 * filters, 3)
    return last


def _spp(layers: _Layers) -> None:
    """Max pools of 5, 9 and 13 (stride 1) of the same input, concatenated with it."""
    for size, back in ((5, None), (9, -2), (13, -4)):
        if back:
            layers.add("route", layers=back)
        layers.add("maxpool", size=size, stride=1)
    layers.add("route", layers=[-1, -3, -5, -6])


def _yolov3_layers(layers: _Layers, masks: Sequence[Sequence[int]], spp: bool) -> None:
    layers.conv(32, 3)
    stage_outputs = []
    for filters, blocks in DARKNET53_STAGES:
        last = layers.conv(filters, 3, stride=2)
        for _ in range(blocks):
            layers.conv(filters // 2, 1)
            layers.conv(filters, 3)
            last = layers.add("shortcut", **{"from": -3, "activation": "linear"})
        stage_outputs.append(last)
    laterals = {1: stage_outputs[3], 2: stage_outputs[2]}  # merged at strides 16 and 8
    for s, filters in enumerate((512, 256, 128)):
        if s:
            layers.upsample_merge(last, filters, laterals[s])
        if spp and s == 0:
            _alternating(layers, filters, 3)
            _spp(layers)
            last = _alternating(layers, filters, 3)
        else:
            last = _alternating(layers, filters, 5)
        layers.conv(2 * filters, 3)
        layers.head(masks[s])


def yolov3_sections(layers: _Layers, masks: Sequence[Sequence[int]]) -> None:
    """Darknet-53 and the three-scale head of YOLOv3 (107 layers, outputs at 82, 94, 106)."""
    _yolov3_layers(layers, masks, spp=False)


def yolov3_spp_sections(layers: _Layers, masks: Sequence[Sequence[int]]) -> None:
    """YOLOv3 with an SPP block amid the deepest head's convs, 3 before, 3 after (114 layers)."""
    _yolov3_layers(layers, masks, spp=True)


def yolov3_tiny_sections(layers: _Layers, masks: Sequence[Sequence[int]]) -> None:
    """Tiny YOLOv3: 6 conv/maxpool pairs (the last pool stride 1), two scales (24 layers)."""
    for filters in (16, 32, 64, 128, 256, 512):
        conv = layers.conv(filters, 3)
        # The stride-1 pool keeps the stride-32 grid while mixing in the next row and column.
        layers.add("maxpool", size=2, stride=1 if filters == 512 else 2)
        if filters == 256:
            stride16 = conv
    layers.conv(1024, 3)
    last = layers.conv(256, 1)
    layers.conv(512, 3)
    layers.head(masks[0])
    layers.upsample_merge(last, 128, stride16)
    layers.conv(256, 3)
    layers.head(masks[1])


TOPOLOGIES: dict[str, tuple[Callable[[_Layers, Sequence[Sequence[int]]], None], Any]] = {
    "yolov3": (yolov3_sections, YOLOV3),
    "yolov3-tiny": (yolov3_tiny_sections, YOLOV3_TINY),
    "yolov3-spp": (yolov3_spp_sections, YOLOV3),
}
"""Name → (section writer, the kyolo preset giving its default anchors and masks)."""


def write_cfg(
    name: str,
    *,
    classes: int = 80,
    anchors: Sequence[tuple[float, float]] | None = None,
    masks: Sequence[Sequence[int]] | None = None,
    input_size: tuple[int, int] = (416, 416),
) -> str:
    """Darknet cfg text of the topology ``name`` (see :data:`TOPOLOGIES`).

    Args:
        name: ``"yolov3"``, ``"yolov3-tiny"`` or ``"yolov3-spp"``.
        classes: number of classes ``C``; each head has ``A · (5 + C)`` filters.
        anchors: ``(w, h)`` in input pixels, all scales; default: the kyolo preset's.
        masks: per ``[yolo]`` section (deepest first), indices into ``anchors``; default: the
            preset's (tiny: ``3,4,5`` and ``1,2,3`` as in Darknet's own tiny cfg).
        input_size: ``(height, width)``, multiples of 32.
    """
    if name not in TOPOLOGIES:
        raise ValueError(f"unknown topology {name!r}; known: {', '.join(TOPOLOGIES)}")
    write, preset = TOPOLOGIES[name]
    layers = _Layers(classes, preset.anchors if anchors is None else anchors)
    write(layers, preset.masks if masks is None else masks)
    return format_cfg([_net(input_size), *layers.sections])
