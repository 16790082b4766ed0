"""Box losses: one registry, :data:`BOX_LOSSES`, keyed by ``cfg.loss.box_loss``.

Every box loss sees one scale's positives as :class:`BoxRows` (``(b, P, ...)`` rows gathered at
the positive slots by :func:`kyolo.targets.target_rows`, 0 weight at rows that are not positive)
and returns per-image sums ``(b,)`` keyed by its components. Adding a box loss is one function,
one :data:`BOX_LOSSES` line and its test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf

from kyolo import boxes
from kyolo.config import YoloConfig
from kyolo.decode import log_wh_ratio
from kyolo.losses.scores import bce_with_logits
from kyolo.losses.terms import per_image


class BoxRows(NamedTuple):
    """One scale's positive rows as the box losses see them, each ``(b, P, ...)``.

    Attributes:
        rows: ``(b, P, 5 + C)`` target rows, xywh normalised to the input image.
        logits: ``(b, P, 5 + C)`` raw head outputs of the same slots.
        pred: ``(b, P, 4)`` decoded boxes in cells (:func:`kyolo.decode.decode_cells`), or None
            for a loss that is not ``decoded``; ``true``: the targets in the same units.
        overlap: ``(b, P)`` the loss's IoU variant of ``pred`` and ``true``, or None.
        cell: ``(b, P, 2)`` the slot's cell column, row; ``anchors``: ``(b, P, 2)`` its anchor in
            input pixels; ``stride``: input pixels per cell; ``grid_wh``: ``(2,)`` grid w, h.
        cfg: the configuration (``decode``, ``loss.sqrt_wh``).
    """

    rows: tf.Tensor
    logits: tf.Tensor
    pred: tf.Tensor | None
    true: tf.Tensor | None
    overlap: tf.Tensor | None
    cell: tf.Tensor
    anchors: tf.Tensor
    stride: float
    grid_wh: tf.Tensor
    cfg: YoloConfig


def target_in_cells(grid: tf.Tensor, cell: tf.Tensor, grid_wh: tf.Tensor) -> tf.Tensor:
    """Targets in the units of :func:`kyolo.decode.decode_cells`.

    ``x·gw − col, y·gh − row`` is the centre from the slot's own cell corner: in [0, 1) for the
    centre cell, [−0.5, 0) or [1, 1.5) for YOLOv5's neighbour cells (``tbox`` of
    ``build_targets``); ``w·gw, h·gh`` the size in cells.

    Args:
        grid: ``(b, P, ≥4)`` targets, xywh normalised to the image.
        cell: ``(b, P, 2)`` the slot's cell column/row; ``grid_wh``: ``(2,)`` grid width and
            height.
    """
    return tf.concat([grid[..., :2] * grid_wh - cell, grid[..., 2:4] * grid_wh], axis=-1)


def overlap_box_term(overlap: tf.Tensor, positive: tf.Tensor) -> tf.Tensor:
    """``Σ_P (1 − X)`` with ``X`` the row's IoU-family overlap ``(b, P)`` → ``(b,)``.

    ``X`` is the entry's ``overlap`` (YOLOv5 and Darknet YOLOv4 use CIoU, Zheng et al. 2020).
    """
    return per_image(positive * (1.0 - overlap))


def mse_box_terms(
    pred_xy: tf.Tensor,
    pred_log_wh: tf.Tensor,
    true: tf.Tensor,
    anchors_cells: tf.Tensor,
    grid_wh: tf.Tensor,
    positive: tf.Tensor,
    sqrt_wh: bool,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Squared error of the in-cell centre and of the size (YOLOv1 eq. 3, YOLOv2 region layer).

    ``xy = Σ_P (x̂ − x)² + (ŷ − y)²`` with centres in cells from the cell corner, and
    ``wh = Σ_P (f(ŵ) − f(w))² + (f(ĥ) − f(h))²`` with ``f = √·`` of the size as a fraction of the
    image (YOLOv1, ``sqrt_wh``) or ``f = log(· / anchor)`` (YOLOv2: the raw ``t_wh`` of a v3 head).

    Args:
        pred_xy: ``(b, P, 2)`` decoded centre offsets; ``pred_log_wh``: ``(b, P, 2)`` the
            prediction's ``log(wh / anchor)`` (:func:`kyolo.decode.log_wh_ratio`).
        true: ``(b, P, 4)`` :func:`target_in_cells`; ``anchors_cells``: ``(b, P, 2)`` the row's
            anchor in cells.
        positive: ``(b, P)`` float mask.
    Returns:
        ``xy (b,)``, ``wh (b,)``.
    """
    mask = positive[..., None] > 0
    # Sizes at empty slots are 0: replaced by the anchor before the log/sqrt keeps gradients finite.
    true_wh = tf.where(mask, true[..., 2:4], anchors_cells)
    if sqrt_wh:
        # √(anchor · e^ρ / grid), written with e^(ρ/2) so that it has a gradient at any logit.
        pred_wh = tf.sqrt(anchors_cells / grid_wh) * tf.exp(0.5 * pred_log_wh)
        true_wh = tf.sqrt(true_wh / grid_wh)
    else:
        pred_wh, true_wh = pred_log_wh, tf.math.log(true_wh / anchors_cells)
    xy = positive[..., None] * tf.square(pred_xy - true[..., :2])
    wh = positive[..., None] * tf.square(pred_wh - true_wh)
    return per_image(xy), per_image(wh)


def keras_yolo3_box_terms(
    y_true: tf.Tensor,
    logits: tf.Tensor,
    cell: tf.Tensor,
    anchors_norm: tf.Tensor,
    grid_wh: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
    """keras-yolo3 box loss: xy BCE against the in-cell offset, wh ½·MSE in log space.

    Both are weighted by ``box_loss_scale = 2 − w·h`` (small boxes count more) and summed over
    assigned slots.

    Args:
        y_true: ``(b, P, 5 + C)`` targets of the rows (xywh normalised to the input image),
            objectness 0 at rows that are not positive.
        logits: ``(b, P, 5 + C)`` raw predictions of the same slots.
        cell: ``(b, P, 2)`` the slot's cell column/row; ``anchors_norm``: ``(b, P, 2)`` its
            anchor as a fraction of the input; ``grid_wh``: ``(2,)`` grid width and height.
    Returns:
        ``xy (b,)``, ``wh (b,)``.
    """
    positive = y_true[..., 4:5] > 0
    obj = tf.cast(positive, tf.float32)
    weight = obj * (2.0 - y_true[..., 2:3] * y_true[..., 3:4])
    target_xy = tf.where(positive, y_true[..., :2] * grid_wh - cell, 0.0)
    # log(0) at empty slots is masked before the log, not after, to keep gradients finite.
    target_wh = tf.math.log(tf.where(positive, y_true[..., 2:4] / anchors_norm, 1.0))
    xy = weight * bce_with_logits(target_xy, logits[..., :2])
    wh = weight * 0.5 * tf.square(target_wh - logits[..., 2:4])
    return per_image(xy), per_image(wh)


def _keras_yolo3(r: BoxRows) -> dict[str, tf.Tensor]:
    xy, wh = keras_yolo3_box_terms(
        r.rows, r.logits, r.cell, r.anchors / (r.grid_wh * r.stride), r.grid_wh
    )
    return {"xy": xy, "wh": wh}


def _mse(r: BoxRows) -> dict[str, tf.Tensor]:
    xy, wh = mse_box_terms(
        r.pred[..., :2],
        log_wh_ratio(r.logits[..., 2:4], r.cfg.decode),
        r.true,
        r.anchors / r.stride,
        r.grid_wh,
        r.rows[..., 4],
        r.cfg.loss.sqrt_wh,
    )
    return {"xy": xy, "wh": wh}


def _overlap(r: BoxRows) -> dict[str, tf.Tensor]:
    return {"box": overlap_box_term(r.overlap, r.rows[..., 4])}


def _needs_plain_v3(cfg: YoloConfig) -> None:
    plain_v3 = cfg.decode == "v3" and {cfg.xy_scale(s) for s in range(cfg.num_scales)} == {1}
    if not plain_v3:
        raise ValueError("box_loss='keras_yolo3' needs decode='v3' and scale_xy=1")


@dataclasses.dataclass(frozen=True)
class BoxLoss:
    """A registered box loss.

    Attributes:
        terms: :class:`BoxRows` → per-image sums ``(b,)`` keyed by ``components``.
        components: the keys of ``terms`` (the loss components Keras metrics report).
        overlap: the IoU variant ``X`` of a ``1 − X`` loss, ``(..., 4), (..., 4)`` xywh → ``(...)``.
        decoded: whether ``terms`` reads the decoded ``pred`` and ``true``.
        sqrt_wh: whether it honours ``loss.sqrt_wh``.
        check: raises ``ValueError`` for a configuration it cannot score.
    """

    terms: Callable[[BoxRows], dict[str, tf.Tensor]]
    components: tuple[str, ...] = ("box",)
    overlap: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None
    decoded: bool = True
    sqrt_wh: bool = False
    check: Callable[[YoloConfig], None] | None = None


BOX_LOSSES: dict[str, BoxLoss] = {
    "keras_yolo3": BoxLoss(_keras_yolo3, ("xy", "wh"), decoded=False, check=_needs_plain_v3),
    "mse": BoxLoss(_mse, ("xy", "wh"), sqrt_wh=True),
    "iou": BoxLoss(_overlap, overlap=boxes.iou),
    "giou": BoxLoss(_overlap, overlap=boxes.giou),
    "diou": BoxLoss(_overlap, overlap=boxes.diou),
    "ciou": BoxLoss(_overlap, overlap=boxes.ciou),
}
"""``cfg.loss.box_loss`` → :class:`BoxLoss` (see :class:`kyolo.config.LossConfig`)."""


def get_box_loss(cfg: YoloConfig) -> BoxLoss:
    """The registered box loss of ``cfg``, checked against the rest of ``cfg``.

    Raises:
        ValueError: an unknown ``box_loss``, ``sqrt_wh`` with a loss that ignores it, or a
            configuration the loss cannot score.
    """
    name = cfg.loss.box_loss
    if name not in BOX_LOSSES:
        raise ValueError(f"box_loss must be one of {tuple(BOX_LOSSES)}, got {name!r}")
    entry = BOX_LOSSES[name]
    if cfg.loss.sqrt_wh and not entry.sqrt_wh:
        takers = [key for key, value in BOX_LOSSES.items() if value.sqrt_wh]
        raise ValueError(f"sqrt_wh applies to box_loss {takers} only, got {name!r}")
    if entry.check is not None:
        entry.check(cfg)
    return entry
