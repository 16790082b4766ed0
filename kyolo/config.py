"""The one anchor/scale configuration object shared by encoder, loss, decoder and exporter.

Scale ``s`` is the model's ``s``-th output. Its grid is ``input_size // strides[s]`` and its anchors
are ``anchors[masks[s]]``. Presets are values of :class:`YoloConfig`, never subclasses: derive a
variant with :meth:`YoloConfig.replace`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

COCO_ANCHORS: tuple[tuple[float, float], ...] = (
    (10, 13),
    (16, 30),
    (33, 23),
    (30, 61),
    (62, 45),
    (59, 119),
    (116, 90),
    (156, 198),
    (373, 326),
)

IGNORE_AGAINST = ("scale", "image")


@dataclasses.dataclass(frozen=True)
class YoloConfig:
    """Geometry of a YOLO head.

    Attributes:
        num_classes: number of object classes ``C``.
        input_size: ``(height, width)`` of the network input in pixels; each must be a multiple of
            every stride.
        anchors: ``(w, h)`` anchor sizes in input pixels, all scales together.
        masks: per scale, the indices into ``anchors`` that the scale owns. Each scale must own the
            same number of anchors ``A`` (the output has ``A * (5 + C)`` channels).
        strides: per scale, input pixels per grid cell.
        max_boxes: most ground-truth boxes one image may carry. The target encoder raises an error
            above it; the loss uses it as the fixed size of its per-image box list.
        ignore_against: which ground truths the ignore mask compares predictions with.
            ``"scale"`` — the boxes assigned to the same scale (keras-yolo3, yolov3-tf2);
            ``"image"`` — every box of the image (TF Model Garden). ``"image"`` makes the encoder
            append the image's padded box list to each ``y_true`` (see ``kyolo.encode``).
    """

    num_classes: int
    input_size: tuple[int, int] = (416, 416)
    anchors: tuple[tuple[float, float], ...] = COCO_ANCHORS
    masks: tuple[tuple[int, ...], ...] = ((6, 7, 8), (3, 4, 5), (0, 1, 2))
    strides: tuple[int, ...] = (32, 16, 8)
    max_boxes: int = 100
    ignore_against: str = "scale"

    def __post_init__(self) -> None:
        # Normalise lists (e.g. from JSON) to tuples so the object stays hashable and frozen.
        set_ = object.__setattr__
        set_(self, "input_size", tuple(int(v) for v in self.input_size))
        set_(self, "anchors", tuple((float(w), float(h)) for w, h in self.anchors))
        set_(self, "masks", tuple(tuple(int(i) for i in m) for m in self.masks))
        set_(self, "strides", tuple(int(s) for s in self.strides))
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise ValueError(f"input_size must be (height, width) > 0, got {self.input_size}")
        if len(self.masks) != len(self.strides):
            raise ValueError(
                f"{len(self.masks)} anchor masks, {len(self.strides)} strides: need one per scale"
            )
        if len({len(m) for m in self.masks}) != 1:
            raise ValueError(f"every scale must own the same number of anchors, got {self.masks}")
        for mask in self.masks:
            if len(set(mask)) != len(mask) or any(not 0 <= i < len(self.anchors) for i in mask):
                raise ValueError(
                    f"masks {self.masks}: each must name distinct anchors < {len(self.anchors)}"
                )
        if any(w <= 0 or h <= 0 for w, h in self.anchors):
            raise ValueError(f"anchors must be positive (w, h) pixels, got {self.anchors}")
        for stride in self.strides:
            if stride < 1 or any(size % stride for size in self.input_size):
                raise ValueError(
                    f"input_size {self.input_size} must be a multiple of each stride {self.strides}"
                )
        if self.max_boxes < 1:
            raise ValueError(f"max_boxes must be >= 1, got {self.max_boxes}")
        if self.ignore_against not in IGNORE_AGAINST:
            raise ValueError(
                f"ignore_against must be one of {IGNORE_AGAINST}, got {self.ignore_against!r}"
            )

    @property
    def num_scales(self) -> int:
        return len(self.strides)

    @property
    def anchors_per_scale(self) -> int:
        return len(self.masks[0])

    def grid_size(self, scale: int, input_size: tuple[int, int] | None = None) -> tuple[int, int]:
        """``(grid_h, grid_w)`` of ``scale`` for ``input_size`` (default: the configured one)."""
        h, w = input_size or self.input_size
        return h // self.strides[scale], w // self.strides[scale]

    def scale_anchors(self, scale: int) -> np.ndarray:
        """``(A, 2)`` float32 ``(w, h)`` anchors of ``scale`` in input pixels."""
        return np.asarray([self.anchors[i] for i in self.masks[scale]], np.float32)

    def cells(self, scale: int, input_size: tuple[int, int] | None = None) -> int:
        """Number of prediction slots ``grid_h * grid_w * A`` of ``scale``."""
        gh, gw = self.grid_size(scale, input_size)
        return gh * gw * self.anchors_per_scale

    def anchor_slots(self, scale: int) -> np.ndarray:
        """``(len(anchors),)`` int32: each anchor's slot in ``scale``, ``-1`` where not owned.

        An anchor may belong to several scales (keras-yolo3's tiny model shares anchor 3).
        """
        slots = np.full(len(self.anchors), -1, np.int32)
        slots[list(self.masks[scale])] = np.arange(self.anchors_per_scale, dtype=np.int32)
        return slots

    def replace(self, **changes: Any) -> YoloConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists, not tuples) accepted back by ``YoloConfig(**d)``."""
        return {
            "num_classes": self.num_classes,
            "input_size": list(self.input_size),
            "anchors": [list(a) for a in self.anchors],
            "masks": [list(m) for m in self.masks],
            "strides": list(self.strides),
            "max_boxes": self.max_boxes,
            "ignore_against": self.ignore_against,
        }

    @classmethod
    def from_any(cls, config: YoloConfig | dict[str, Any]) -> YoloConfig:
        return config if isinstance(config, cls) else cls(**config)


YOLOV3 = YoloConfig(num_classes=80)
"""keras-yolo3 / Darknet YOLOv3: 9 COCO anchors, strides 32/16/8, 416x416."""

YOLOV3_TINY = YoloConfig(
    num_classes=80,
    anchors=((10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319)),
    masks=((3, 4, 5), (1, 2, 3)),
    strides=(32, 16),
)
"""keras-yolo3 tiny: 6 anchors, masks [[3,4,5],[1,2,3]] (anchor 3 shared, as in the reference)."""
