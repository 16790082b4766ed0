"""The one configuration object shared by encoder, loss, decoder and exporter.

Scale ``s`` is the model's ``s``-th output. Its grid is ``input_size // strides[s]`` and its anchors
are ``anchors[masks[s]]``. :class:`YoloConfig` holds that geometry, how ground truths are assigned
to prediction slots and how raw outputs decode into boxes; its nested :class:`LossConfig` holds the
loss hyper-parameters. Presets (:data:`YOLOV3`, :data:`YOLOV4`, :data:`YOLOV5`, ...) are values of
:class:`YoloConfig`, never subclasses: derive a variant with :meth:`YoloConfig.replace` or
:meth:`YoloConfig.with_loss`. ``docs/losses.md`` gives each preset's equations and sources.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
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
TARGET_LAYOUTS = ("dense", "sparse")
ASSIGNERS = ("best_anchor", "best_anchor_per_scale", "multi_anchor", "ratio")
DECODES = ("v3", "v5")
SCORE_LOSSES = ("bce", "mse")
OBJ_TARGETS = ("one", "iou")
TERM_REDUCTIONS = ("sum", "mean")
FOCAL_ALPHA = 0.25
"""α of the focal loss: RetinaNet's value, which YOLOv5's ``FocalLoss`` also fixes."""


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_finite(fields: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the first field whose value (a number, or numbers nested in
    tuples; ``None`` and strings skipped) is NaN or infinite. NaN fails every comparison, so the
    range checks alone would let it through."""
    for name, value in fields.items():
        if value is None or isinstance(value, str):
            continue
        if not np.all(np.isfinite(np.asarray(value, dtype=float))):
            raise ValueError(f"{name} must be finite, got {value}")


def _per_stride(values: Any, old_strides: Sequence[int], strides: Sequence[int]) -> Any:
    """A per-scale value (e.g. YOLOv5's ``balance``) re-ordered from ``old_strides`` to
    ``strides``, matched by stride. Scalars and ``None`` pass through."""
    if not isinstance(values, tuple):
        return values
    by_stride = dict(zip(old_strides, values, strict=True))
    missing = [s for s in strides if s not in by_stride]
    if missing:
        raise ValueError(
            f"the preset defines per-scale values for strides {tuple(old_strides)}, not for "
            f"{missing}"
        )
    return tuple(by_stride[s] for s in strides)


def _jsonable(value: Any) -> Any:
    """Tuples → lists and nested configs → dicts, recursively (JSON-ready, Keras-serialisable)."""
    if dataclasses.is_dataclass(value):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Loss hyper-parameters; the defaults are keras-yolo3's ``yolo_loss``.

    Per scale, with ``P`` the assigned (positive) slots, ``N`` the others and ``S`` all slots::

        loss = box_gain · Σ_P box  +  obj_gain · balance[s] · (Σ_P obj + noobj_weight · Σ_N w·obj)
               + cls_gain · Σ_P Σ_c cls

    where ``w`` is the ignore mask (× the OHEM selection). ``term_reduction`` turns the sums into
    YOLOv5's means. Attributes:

        box_loss: a name in :data:`kyolo.losses.box.BOX_LOSSES` (checked when a ``YoloLoss`` is
            built): ``"keras_yolo3"`` (xy BCE on the in-cell offset + ½·MSE of log-wh, weighted by
            2 − w·h), ``"mse"`` (squared error of in-cell xy and of log or sqrt wh: YOLOv1/v2, the
            training study), or ``1 − X`` for ``X`` in ``"iou"``, ``"giou"``, ``"diou"``,
            ``"ciou"`` (computed in grid-cell units, i.e. pixels up to scale).
        sqrt_wh: with ``box_loss="mse"``: compare √w, √h (fractions of the image, YOLOv1) instead
            of log(w / anchor) (YOLOv2).
        score_loss: objectness and class loss on each logit: ``"bce"`` (sigmoid cross-entropy) or
            ``"mse"`` (squared error of the sigmoid, YOLOv1/v2).
        obj_target: objectness target of positives: ``"one"``, or ``"iou"``: the detached IoU
            (of the ``box_loss`` kind when it is an IoU, plain IoU otherwise) clamped at 0.
        term_reduction: ``"sum"``: every term summed over the image's slots (keras-yolo3,
            Darknet); Keras' ``sum_over_batch_size`` then averages images. ``"mean"``: YOLOv5: box
            averaged over the batch's positives, objectness over all of its slots, class over
            positives × classes, the total multiplied by the (global) batch size.
        box_gain, obj_gain, cls_gain: term weights (YOLOv5 ``box``/``obj``/``cls``; Darknet
            ``iou_normalizer``/``obj_normalizer``/``cls_normalizer``; YOLOv1 λcoord = box_gain).
        noobj_weight: weight of negatives' objectness relative to positives' (YOLOv1 λnoobj).
        balance: per-scale objectness weight (YOLOv5 ``balance``), ``None`` for all 1.
        ignore_thresh: negatives whose decoded box overlaps a ground truth by this IoU or more get
            no objectness loss; ``None`` scores every negative (YOLOv1, YOLOv5).
        label_smoothing: ε of YOLOv5's ``smooth_BCE``: class targets 1 − ε/2 and ε/2.
        focal_gamma: γ > 0 multiplies objectness and class BCE by the focal factor
            ``α_t (1 − p_t)^γ`` (Lin et al. 2017, eq. 5, α = :data:`FOCAL_ALPHA`); 0 is off.
        cls_pos_weight: BCE weight of positive class labels (YOLOv5 ``cls_pw``).
        obj_pos_weight: BCE weight of positive objectness labels (YOLOv5 ``obj_pw``), or
            ``"auto"``: 0.5 · (slots − positives) / positives of the scale's batch (training
            study).
        ohem_ratio: > 0 keeps, per image, only the ``ohem_ratio × positives`` negatives with the
            largest objectness loss (SSD hard-negative mining, 3:1); 0 is off.
        skip_single_class: no class loss when ``num_classes == 1`` (YOLOv5).
    """

    box_loss: str = "keras_yolo3"
    sqrt_wh: bool = False
    score_loss: str = "bce"
    obj_target: str = "one"
    term_reduction: str = "sum"
    box_gain: float = 1.0
    obj_gain: float = 1.0
    cls_gain: float = 1.0
    noobj_weight: float = 1.0
    balance: tuple[float, ...] | None = None
    ignore_thresh: float | None = 0.5
    label_smoothing: float = 0.0
    focal_gamma: float = 0.0
    cls_pos_weight: float = 1.0
    obj_pos_weight: float | str = 1.0
    ohem_ratio: float = 0.0
    skip_single_class: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("box_gain", "obj_gain", "cls_gain", "noobj_weight", "label_smoothing"):
            set_(self, name, float(getattr(self, name)))
        for name in ("focal_gamma", "cls_pos_weight", "ohem_ratio"):
            set_(self, name, float(getattr(self, name)))
        if self.balance is not None:
            set_(self, "balance", tuple(float(b) for b in self.balance))
        if self.ignore_thresh is not None:
            set_(self, "ignore_thresh", float(self.ignore_thresh))
        if self.obj_pos_weight != "auto":
            set_(self, "obj_pos_weight", float(self.obj_pos_weight))
        _check_choice("score_loss", self.score_loss, SCORE_LOSSES)
        _check_choice("obj_target", self.obj_target, OBJ_TARGETS)
        _check_choice("term_reduction", self.term_reduction, TERM_REDUCTIONS)
        _check_finite({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        for name in ("box_gain", "obj_gain", "cls_gain", "noobj_weight", "balance"):
            value = getattr(self, name)
            if value is not None and np.min(value) < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if self.ignore_thresh is not None and not 0 < self.ignore_thresh <= 1:
            raise ValueError(f"ignore_thresh must be in (0, 1] or None, got {self.ignore_thresh}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.focal_gamma < 0 or self.ohem_ratio < 0:
            raise ValueError("focal_gamma and ohem_ratio must be >= 0")
        if self.cls_pos_weight <= 0 or (self.obj_pos_weight != "auto" and self.obj_pos_weight <= 0):
            raise ValueError("cls_pos_weight and obj_pos_weight must be > 0 (or 'auto' for obj)")
        if self.score_loss == "mse" and (
            self.focal_gamma > 0 or self.cls_pos_weight != 1 or self.obj_pos_weight != 1
        ):
            raise ValueError("focal_gamma and pos weights modify BCE: use score_loss='bce'")

    def replace(self, **changes: Any) -> LossConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict accepted back by ``LossConfig(**d)``."""
        return _jsonable(self)

    @classmethod
    def from_any(cls, config: LossConfig | dict[str, Any]) -> LossConfig:
        return config if isinstance(config, cls) else cls(**config)


FLOAT_FIELDS = ("anchors", "iou_thresh", "anchor_t", "scale_xy")
"""The real-valued fields of :class:`YoloConfig` (the loss's are checked by :class:`LossConfig`)."""


@dataclasses.dataclass(frozen=True)
class YoloConfig:
    """Geometry, assignment and decoding of a YOLO head, plus its loss.

    Attributes:
        num_classes: number of object classes ``C``.
        input_size: ``(height, width)`` of the network input in pixels (one number: square); each
            must be a multiple of every stride.
        anchors: ``(w, h)`` anchor sizes in input pixels, all scales together.
        masks: per scale, the indices into ``anchors`` that the scale owns. Each scale must own the
            same number of anchors ``A`` (the output has ``A * (5 + C)`` channels).
        strides: per scale, input pixels per grid cell.
        max_boxes: most ground-truth boxes one image may carry. The target encoder raises an error
            above it; the loss uses it as the fixed size of its per-image box list.
        ignore_against: which ground truths the ignore mask compares predictions with.
            ``"scale"`` — the boxes assigned to the same scale (keras-yolo3, yolov3-tf2);
            ``"image"`` — every box of the image (Darknet, TF Model Garden). ``"image"`` makes the
            encoder append the image's padded box list to each ``y_true`` (see ``kyolo.encode``).
        target_layout: how ``y_true`` holds a scale's assigned slots (:mod:`kyolo.targets`):
            ``"dense"`` — the whole ``(gh, gw, A, 5 + C)`` grid, keras-yolo3's layout;
            ``"sparse"`` — only the assigned slots, :meth:`max_positives` rows ``(5 + C + 1)``
            wide (the grid row plus its slot index). Same loss; far less data per image.
        assigner: which slots a ground truth is written to (:mod:`kyolo.encode`):
            ``"best_anchor"`` — its one best anchor by centred w/h IoU over all scales
            (keras-yolo3); ``"best_anchor_per_scale"`` — the best anchor of every scale;
            ``"multi_anchor"`` — the best anchor plus every anchor with IoU > ``iou_thresh``
            (Darknet YOLOv4); ``"ratio"`` — every anchor with w/h ratio max(r, 1/r) <
            ``anchor_t``, in the centre cell and the two neighbour cells nearest the centre
            (YOLOv5).
        iou_thresh: anchor IoU threshold of ``"multi_anchor"`` (Darknet ``iou_thresh``).
        anchor_t: anchor ratio threshold of ``"ratio"`` (YOLOv5 ``anchor_t``).
        decode: box size parameterisation: ``"v3"``: ``wh = e^t · anchor``; ``"v5"``:
            ``wh = (2σ(t))² · anchor``.
        scale_xy: grid sensitivity ``s`` of the centre, ``xy = s·σ(t) − (s − 1)/2`` cells from the
            cell corner (Darknet ``scale_x_y``; 1 is YOLOv3, 2 is YOLOv5): one value for every
            scale or one per scale.
        loss: the loss hyper-parameters, :class:`LossConfig`.
    """

    num_classes: int
    input_size: tuple[int, int] = (416, 416)
    anchors: tuple[tuple[float, float], ...] = COCO_ANCHORS
    masks: tuple[tuple[int, ...], ...] = ((6, 7, 8), (3, 4, 5), (0, 1, 2))
    strides: tuple[int, ...] = (32, 16, 8)
    max_boxes: int = 100
    ignore_against: str = "scale"
    target_layout: str = "dense"
    assigner: str = "best_anchor"
    iou_thresh: float = 0.213
    anchor_t: float = 4.0
    decode: str = "v3"
    scale_xy: float | tuple[float, ...] = 1.0
    loss: LossConfig = LossConfig()

    def __post_init__(self) -> None:
        # Normalise lists (e.g. from JSON) to tuples so the object stays hashable and frozen.
        set_ = object.__setattr__
        size = self.input_size
        # A scalar means a square input (as --img-size S), so `--set input_size=160` works.
        set_(self, "input_size", (int(size),) * 2 if np.ndim(size) == 0 else tuple(map(int, size)))
        set_(self, "anchors", tuple((float(w), float(h)) for w, h in self.anchors))
        set_(self, "masks", tuple(tuple(int(i) for i in m) for m in self.masks))
        set_(self, "strides", tuple(int(s) for s in self.strides))
        set_(self, "iou_thresh", float(self.iou_thresh))
        set_(self, "anchor_t", float(self.anchor_t))
        if isinstance(self.scale_xy, tuple | list):
            set_(self, "scale_xy", tuple(float(s) for s in self.scale_xy))
        else:
            set_(self, "scale_xy", float(self.scale_xy))
        set_(self, "loss", LossConfig.from_any(self.loss))
        _check_finite({name: getattr(self, name) for name in FLOAT_FIELDS})
        self._check_geometry()
        self._check_assignment()

    def _check_geometry(self) -> None:
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
        for name, per_scale in (("scale_xy", self.scale_xy), ("loss.balance", self.loss.balance)):
            if isinstance(per_scale, tuple) and len(per_scale) != self.num_scales:
                raise ValueError(
                    f"{name} {per_scale} needs one value per scale ({self.num_scales})"
                )

    def _check_assignment(self) -> None:
        _check_choice("ignore_against", self.ignore_against, IGNORE_AGAINST)
        _check_choice("target_layout", self.target_layout, TARGET_LAYOUTS)
        _check_choice("assigner", self.assigner, ASSIGNERS)
        _check_choice("decode", self.decode, DECODES)
        if not 0 <= self.iou_thresh <= 1 or self.anchor_t <= 1:
            raise ValueError(
                f"need 0 <= iou_thresh <= 1 and anchor_t > 1, got {self.iou_thresh}, "
                f"{self.anchor_t}"
            )
        if min(self.xy_scale(s) for s in range(self.num_scales)) < 1:
            raise ValueError(f"scale_xy must be >= 1, got {self.scale_xy}")
        # These assigners may put one box on several slots of a scale, more positives than the
        # per-scale box list (max_boxes rows) of the ignore mask can hold.
        if (
            self.loss.ignore_thresh is not None
            and self.assigner in ("multi_anchor", "ratio")
            and self.ignore_against == "scale"
        ):
            raise ValueError(
                f"assigner={self.assigner!r} with an ignore mask needs ignore_against='image'"
            )

    @property
    def num_scales(self) -> int:
        return len(self.strides)

    @property
    def anchors_per_scale(self) -> int:
        return len(self.masks[0])

    def xy_scale(self, scale: int) -> float:
        """Grid sensitivity ``s`` of ``scale`` (see ``scale_xy``)."""
        return self.scale_xy[scale] if isinstance(self.scale_xy, tuple) else self.scale_xy

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

    def max_positives(self, scale: int) -> int:
        """Bound on one image's assigned (positive) slots at ``scale``.

        The encoder keeps at most ``max_boxes`` boxes and the assigner proposes, per box and
        scale, at most 1 slot (``"best_anchor"``, ``"best_anchor_per_scale"``), ``A``
        (``"multi_anchor"``) or ``3 · A`` (``"ratio"``: the centre cell and at most one neighbour
        per axis; on an integer centre both neighbours of an axis qualify, but the far one is
        the centre cell itself); never more than the grid's slots.
        """
        count = self.anchors_per_scale
        per_box = {"multi_anchor": count, "ratio": 3 * count}.get(self.assigner, 1)
        return min(self.max_boxes * per_box, self.cells(scale))

    def anchor_slots(self, scale: int) -> np.ndarray:
        """``(len(anchors),)`` int32: each anchor's slot in ``scale``, ``-1`` where not owned.

        An anchor may belong to several scales (keras-yolo3's tiny model shares anchor 3).
        """
        slots = np.full(len(self.anchors), -1, np.int32)
        slots[list(self.masks[scale])] = np.arange(self.anchors_per_scale, dtype=np.int32)
        return slots

    def replace(self, **changes: Any) -> YoloConfig:
        return dataclasses.replace(self, **changes)

    def with_loss(self, **changes: Any) -> YoloConfig:
        """A copy whose :class:`LossConfig` has ``changes`` applied."""
        return self.replace(loss=self.loss.replace(**changes))

    def with_geometry(
        self,
        *,
        strides: Sequence[int],
        input_size: Sequence[int],
        num_classes: int,
        anchors: Any = None,
    ) -> YoloConfig:
        """This preset's assignment, decoding and loss on another model and dataset geometry.

        Anchors are sorted by area and the scale with the ``k``-th finest stride gets the
        ``k``-th group of ``A``; per-scale values (``scale_xy``, YOLOv5's ``balance``) are matched
        to the new scales by stride.

        Args:
            strides: the model's strides, in its output order (:data:`kyolo.models.STRIDES`).
            input_size: ``(height, width)`` in pixels.
            num_classes: ``C``.
            anchors: ``(A · scales, 2)`` ``(w, h)`` pixels sorted by area (e.g. from
                :func:`kyolo.anchors.dataset_anchors`), or None to keep this config's anchors and
                masks (their count must fit the model).
        """
        strides = tuple(int(s) for s in strides)
        per_scale = self.anchors_per_scale
        if anchors is None:
            if len(self.anchors) != per_scale * len(strides) or len(self.masks) != len(strides):
                raise ValueError(
                    f"the preset has {len(self.anchors)} anchors in {len(self.masks)} scales, "
                    f"the model needs {per_scale * len(strides)} in {len(strides)}"
                )
            anchors, masks = self.anchors, self.masks
        else:
            anchors = tuple((float(w), float(h)) for w, h in np.asarray(anchors).tolist())
            if len(anchors) != per_scale * len(strides):
                raise ValueError(
                    f"{len(anchors)} anchors given, the model needs {per_scale * len(strides)}"
                )
            rank = {stride: k for k, stride in enumerate(sorted(strides))}
            masks = tuple(
                tuple(range(rank[s] * per_scale, (rank[s] + 1) * per_scale)) for s in strides
            )
        return self.replace(
            num_classes=num_classes,
            input_size=tuple(input_size),
            anchors=anchors,
            masks=masks,
            strides=strides,
            scale_xy=_per_stride(self.scale_xy, self.strides, strides),
            loss=self.loss.replace(balance=_per_stride(self.loss.balance, self.strides, strides)),
        )

    def with_overrides(self, overrides: Sequence[str]) -> YoloConfig:
        """``FIELD=VALUE`` strings (``loss.FIELD`` for the loss) applied to a copy.

        Values are JSON (``3``, ``0.5``, ``[1, 2]``, ``null``), else plain strings; lists become
        tuples. Unknown fields and invalid values raise ``ValueError``.
        """
        top: dict[str, Any] = {}
        loss: dict[str, Any] = {}
        for item in overrides:
            field, sep, text = item.partition("=")
            if not sep or not field:
                raise ValueError(f"--set {item!r}: expected FIELD=VALUE")
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text
            group, name = (loss, field[5:]) if field.startswith("loss.") else (top, field)
            group[name] = tuple(value) if isinstance(value, list) else value
        try:
            return self.replace(**top).with_loss(**loss)
        except TypeError as err:  # an unknown field name
            raise ValueError(f"--set: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists, not tuples; ``loss`` nested) accepted by ``YoloConfig(**d)``."""
        return _jsonable(self)

    @classmethod
    def from_any(cls, config: YoloConfig | dict[str, Any]) -> YoloConfig:
        return config if isinstance(config, cls) else cls(**config)


YOLOV3 = YoloConfig(num_classes=80)
"""keras-yolo3 / Darknet YOLOv3: 9 COCO anchors, strides 32/16/8, 416x416, keras-yolo3's loss."""

YOLOV3_TINY = YoloConfig(
    num_classes=80,
    anchors=((10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319)),
    masks=((3, 4, 5), (1, 2, 3)),
    strides=(32, 16),
)
"""keras-yolo3 tiny: 6 anchors, masks [[3,4,5],[1,2,3]] (anchor 3 shared, as in the reference)."""

YOLOV4 = YoloConfig(
    num_classes=80,
    input_size=(608, 608),
    anchors=(
        (12, 16),
        (19, 36),
        (40, 28),
        (36, 75),
        (76, 55),
        (72, 146),
        (142, 110),
        (192, 243),
        (459, 401),
    ),
    masks=((0, 1, 2), (3, 4, 5), (6, 7, 8)),
    strides=(8, 16, 32),
    ignore_against="image",
    assigner="multi_anchor",
    iou_thresh=0.213,
    scale_xy=(1.2, 1.1, 1.05),
    loss=LossConfig(box_loss="ciou", box_gain=0.07, ignore_thresh=0.7),
)
"""Darknet ``yolov4.cfg``: CIoU (iou_normalizer 0.07), multi-anchor 0.213, scale_x_y, ignore 0.7."""

YOLOV5 = YoloConfig(
    num_classes=80,
    input_size=(640, 640),
    masks=((0, 1, 2), (3, 4, 5), (6, 7, 8)),
    strides=(8, 16, 32),
    assigner="ratio",
    anchor_t=4.0,
    decode="v5",
    scale_xy=2.0,
    loss=LossConfig(
        box_loss="ciou",
        obj_target="iou",
        term_reduction="mean",
        box_gain=0.05,
        obj_gain=1.0,
        cls_gain=0.5,
        balance=(4.0, 1.0, 0.4),
        ignore_thresh=None,
        skip_single_class=True,
    ),
)
"""ultralytics/yolov5 ``ComputeLoss`` with ``hyp.scratch-low.yaml`` gains, P3-P5 anchors, 640."""

_SQUARED_ERROR = {"box_loss": "mse", "score_loss": "mse", "obj_target": "iou"}
"""YOLOv1/v2's sum-squared error: in-cell xy and wh, probabilities, objectness regressed to IoU."""

YOLOV1 = YOLOV3.with_loss(
    **_SQUARED_ERROR, sqrt_wh=True, box_gain=5.0, noobj_weight=0.5, ignore_thresh=None
)
"""Historical: YOLOv1's sum-squared error (λcoord 5, λnoobj 0.5, √wh) on the YOLOv3 anchor head."""

YOLOV2 = YOLOV3.with_loss(**_SQUARED_ERROR, obj_gain=5.0, noobj_weight=0.2, ignore_thresh=0.6)
"""Historical: Darknet YOLOv2 (region layer, ``yolo-voc.cfg``) on the YOLOv3 anchor head."""

PRESETS: dict[str, YoloConfig] = {
    "yolov1": YOLOV1,
    "yolov2": YOLOV2,
    "yolov3": YOLOV3,
    "yolov3_tiny": YOLOV3_TINY,
    "yolov4": YOLOV4,
    "yolov5": YOLOV5,
}


def preset(name: str, **changes: Any) -> YoloConfig:
    """The preset called ``name`` (see :data:`PRESETS`, case-insensitive), with ``changes``."""
    key = name.lower().replace("-", "_")
    if key not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[key].replace(**changes) if changes else PRESETS[key]
