"""Darknet weights on kyolo's own ``yolov3`` and ``yolov3_tiny`` models.

kyolo's builders (:mod:`kyolo.models.yolov3`) are Darknet's ``yolov3.cfg`` and ``yolov3-tiny.cfg``
topologies under keras-yolo3's layer names. The functions here list those names in Darknet's conv
order (the order of the ``.weights`` file): the backbone, then per scale, deepest first, the
lateral 1x1 conv (scales after the first), the head convs, the 3x3 output conv and the linear
detection conv ``scale_{s}``. The outputs are in the same order as the cfg's ``[yolo]`` sections.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from kyolo.darknet.build import ConvLayer, DarknetModel
from kyolo.darknet.weights import check_layers
from kyolo.models import build_model
from kyolo.models.yolov3 import DARKNET53_STAGES

TINY_BACKBONE = 8
"""Convs ``conv1`` .. ``conv8`` of kyolo's tiny YOLOv3 before its head."""


def _head(scales: int, depth: int) -> list[str]:
    """Prefixes of :func:`kyolo.models.darknet.fpn_head`'s convs in Darknet order."""
    prefixes = []
    for s in range(scales):
        lateral = [f"head{s}_lateral"] if s else []
        prefixes += [*lateral, *(f"head{s}_conv{i}" for i in range(1, depth + 1)), f"head{s}_out"]
        prefixes.append(f"scale_{s}")
    return prefixes


def yolov3_prefixes() -> list[str]:
    """Darknet-53 (``stem``, per stage its ``down`` conv and two per block), then 3 heads."""
    prefixes = ["stem"]
    for i, (_, blocks) in enumerate(DARKNET53_STAGES, start=1):
        prefixes.append(f"stage{i}_down")
        for j in range(1, blocks + 1):
            prefixes += [f"stage{i}_block{j}_1", f"stage{i}_block{j}_2"]
    return prefixes + _head(3, depth=5)


def yolov3_tiny_prefixes() -> list[str]:
    """``conv1`` .. ``conv8``, then the 2 heads without extra convs (keras-yolo3's tiny)."""
    return [f"conv{i}" for i in range(1, TINY_BACKBONE + 1)] + _head(2, depth=0)


KYOLO_LAYOUTS: dict[str, Callable[[], list[str]]] = {
    "yolov3": yolov3_prefixes,
    "yolov3_tiny": yolov3_tiny_prefixes,
}
"""kyolo model name → conv prefixes in Darknet order (``{p}_conv``/``{p}_bn`` or ``scale_s``)."""


def _renamed(conv: ConvLayer, prefix: str) -> ConvLayer:
    if prefix.startswith("scale_"):
        return dataclasses.replace(conv, conv=prefix, bn=None)
    return dataclasses.replace(conv, conv=f"{prefix}_conv", bn=f"{prefix}_bn")


def as_kyolo_model(darknet: DarknetModel, name: str, **kwargs: object) -> DarknetModel:
    """kyolo's model ``name`` for ``darknet``'s config, with ``darknet``'s convs mapped onto it.

    Build ``darknet`` from the cfg, then load the ``.weights`` with the returned ``convs`` into the
    returned ``model``. ``kwargs`` go to the kyolo builder (e.g. ``weight_decay``).

    Raises:
        ValueError: an unknown ``name``, or a cfg that is not that topology (conv count or shapes).
    """
    if name not in KYOLO_LAYOUTS:
        raise ValueError(
            f"no Darknet layout for kyolo model {name!r}; known: {sorted(KYOLO_LAYOUTS)}"
        )
    prefixes = KYOLO_LAYOUTS[name]()
    if len(prefixes) != len(darknet.convs):
        raise ValueError(
            f"the cfg has {len(darknet.convs)} convs, kyolo's {name} has {len(prefixes)}: "
            "not the same topology"
        )
    model = build_model(name, darknet.config, **kwargs)
    convs = tuple(_renamed(c, p) for c, p in zip(darknet.convs, prefixes, strict=True))
    check_layers(model, convs)
    return DarknetModel(model, convs, darknet.config)
