"""``YoloLoss``: the Keras face of the YOLO loss, one instance per output scale."""

from __future__ import annotations

import functools
from typing import Any

import keras
import tensorflow as tf

from kyolo import boxes
from kyolo.config import YoloConfig
from kyolo.decode import decode_cells, decode_xywh, grid_size_wh, slot_cell_anchor
from kyolo.losses import box, head, terms
from kyolo.losses.ohem import hard_negatives
from kyolo.losses.scores import score_loss
from kyolo.targets import layout_name, rows_to_slots, target_boxes, target_rows, target_shape


def check_shapes(
    y_true: Any,
    y_pred: Any,
    cfg: YoloConfig,
    scale: int,
    layout: head.HeadLayout = head.HEAD_LAYOUTS["cells"],
) -> None:
    """Raise ``ValueError`` unless one scale's ``y_true`` and ``y_pred`` have ``cfg``'s shapes.

    Checks the static shapes (at trace time), so that a loss attached to the wrong output, a head
    built for another class count or a target encoded with another config fails with expected
    versus got instead of a reshape error inside TensorFlow, or a silently wrong loss. Unknown
    dimensions are not checked.

    Args:
        y_true: one scale's batched target, in the layout of :mod:`kyolo.targets`.
        y_pred: ``(b, gh, gw, A · (5 + C))`` raw head output (or ``layout``'s shape); ``(gh,
            gw)`` is the grid of ``cfg.input_size`` at this scale, the one the encoder writes
            targets for.
        layout: how ``y_pred`` holds its slots (:data:`kyolo.losses.head.HEAD_LAYOUTS`).
    """
    where = f"YoloLoss(scale={scale})"
    count, depth = cfg.anchors_per_scale, 5 + cfg.num_classes
    grid = cfg.grid_size(scale)
    pred, true = tf.TensorShape(y_pred.shape), tf.TensorShape(y_true.shape)
    expected_pred = layout.expected_shape(grid, count, depth)
    if pred.rank is not None and pred.rank != len(expected_pred):
        raise ValueError(f"{where}: y_pred must be {layout.shape}, got {pred}")
    if pred.rank is not None:
        got = [d for k, d in enumerate(pred) if k and k not in layout.grid_axes]
        want = [d for k, d in enumerate(expected_pred) if k and k not in layout.grid_axes]
        if not tf.TensorShape(got).is_compatible_with(want):
            raise ValueError(
                f"{where}: y_pred has {' x '.join(map(str, got))} channels, expected A·(5 + C) = "
                f"{count}·(5 + {cfg.num_classes}) = {' x '.join(map(str, want))} "
                f"(anchors_per_scale={count}, num_classes={cfg.num_classes})"
            )
    if not pred.is_compatible_with(expected_pred):
        got = tuple(pred[axis] for axis in layout.grid_axes)
        raise ValueError(
            f"{where}: y_pred grid {got} is not the {grid} grid of stride "
            f"{cfg.strides[scale]} on cfg.input_size {cfg.input_size}: is this loss on output "
            f"{scale}?"
        )
    expected = tf.TensorShape([None, *target_shape(cfg, scale)])
    target_name = layout_name(cfg)
    if not true.is_compatible_with(expected):
        raise ValueError(
            f"{where}: y_true shape {true} is not {target_name} = {expected} of this config "
            f"(grid {grid} at stride {cfg.strides[scale]}, target_layout={cfg.target_layout!r}, "
            f"ignore_against={cfg.ignore_against!r}, num_classes={cfg.num_classes}, "
            f"max_boxes={cfg.max_boxes}): was it encoded with "
            "another config, or for another output?"
        )


def _nan_unless_finite(values: Any) -> tf.Tensor:
    """``(b,)`` float32: 0 for an image whose elements are all finite, NaN otherwise.

    ``0 · Σ x`` is NaN when some ``x`` is NaN or ±Inf, and also when finite values sum beyond
    float32's range, which needs ``|x| > 1e32`` (for up to 2^21 values per image): not a logit or
    target of any working model. A plain sum, because XLA:CPU vectorises it (5 ms for a 640 head
    batch, 2.5× less than ``reduce_all(is_finite(x))``, 9× less than ``Σ 0·x``). No gradient.
    """
    values = tf.stop_gradient(tf.cast(values, tf.float32))
    return 0.0 * tf.reduce_sum(values, axis=list(range(1, values.shape.rank)))


def _nan_if_truncated(positive: tf.Tensor, count: int) -> tf.Tensor:
    """``(b,)`` float32: NaN for an image with more than ``count`` positive slots, 0 otherwise.

    :func:`kyolo.targets.positive_slots` reads ``count`` rows of a dense target and asserts that
    none is left out, but XLA drops asserts: under ``jit_compile=True`` this poison keeps a target
    encoded for more boxes than the loss's ``max_boxes`` from losing positives silently. (Sparse
    and ``ignore_against="image"`` targets hold ``max_boxes`` in their shape, checked when
    tracing.) The same sum as the assert's, which XLA computes once.

    Args:
        positive: ``(b, S)`` dense target objectness, ``> 0`` at the positives.
    """
    positives = tf.reduce_sum(tf.cast(positive > 0, tf.int32), axis=-1)
    return tf.where(positives > count, float("nan"), 0.0)


@keras.saving.register_keras_serializable(package="kyolo")
class YoloLoss(keras.losses.Loss):
    """YOLO loss of one output scale, as ``cfg.loss`` (:class:`kyolo.config.LossConfig`) says.

    Per image the terms of :mod:`kyolo.losses.terms` and :mod:`kyolo.losses.box` (see
    :meth:`components`); Keras' ``reduction="sum_over_batch_size"`` averages them over images and
    scales by the replica count under ``tf.distribute``. Summing the losses of all scales gives the
    preset's total: keras-yolo3's ``yolo_loss`` with the default config, YOLOv5's ``ComputeLoss``
    (``(lbox + lobj + lcls) · batch size``) with :data:`kyolo.config.YOLOV5`. Keep the default
    ``reduction``: the ``"mean"`` normalisation below relies on it.

    ``term_reduction="mean"`` (YOLOv5) averages over the whole batch, not per image: the
    per-image vector is ``B · b · s_i / N``, with ``s_i`` the image's sum, ``N`` the batch's count
    (positives, slots or positives × classes), ``b`` the images this replica sees and ``B = b ·
    replicas`` the global batch, so that its mean is ``B ·`` YOLOv5's value. Under ``tf.distribute``
    Keras averages the replicas' losses, which equals YOLOv5 under DDP (``loss · WORLD_SIZE``,
    means taken per replica): the objectness mean is then the whole batch's, the box and class
    means are averages of per-replica means (see ``docs/losses.md``).

    Args:
        cfg: the head configuration (or its ``to_dict()``).
        scale: which output this instance scores.
        head_layout: how ``y_pred`` holds its slots, a key of
            :data:`kyolo.losses.head.HEAD_LAYOUTS`: ``"cells"`` (Keras' heads) or ``"anchors"``
            (YOLOv5's ``(b, A, gh, gw, 5 + C)``, read in place without a transpose).

    ``y_true`` is one scale's target from :mod:`kyolo.encode` (batched); ``y_pred`` the raw
    ``(b, gh, gw, A * (5 + C))`` output of that scale (or ``head_layout``'s shape), any float
    dtype.
    """

    def __init__(
        self,
        cfg: YoloConfig | dict[str, Any],
        scale: int,
        reduction: str = "sum_over_batch_size",
        name: str | None = None,
        dtype: str | None = None,
        head_layout: str = "cells",
    ) -> None:
        super().__init__(name=name or f"yolo_loss_{scale}", reduction=reduction, dtype=dtype)
        self.cfg = YoloConfig.from_any(cfg)
        if not 0 <= scale < self.cfg.num_scales:
            raise ValueError(f"scale must be in [0, {self.cfg.num_scales}), got {scale}")
        self.scale = scale
        self.box_loss = box.get_box_loss(self.cfg)
        self.layout = head.get_head_layout(head_layout)

    @property
    def component_names(self) -> tuple[str, ...]:
        """Keys of :meth:`components`: the box loss's (``xy, wh`` or ``box``), ``obj``, ``cls``."""
        return (*self.box_loss.components, "obj", "cls")

    def components(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> dict[str, tf.Tensor]:
        """The loss by :attr:`component_names`: ``(b,)`` per-image values, weighted and normalised.

        Gains, balance and ``term_reduction`` are applied; Keras' reduction is not.
        """
        cfg, spec, box_loss = self.cfg, self.cfg.loss, self.box_loss
        check_shapes(y_true, y_pred, cfg, self.scale, self.layout)
        shape = tf.shape(y_pred)
        grid_h, grid_w = self.layout.grid(shape)
        size = grid_h * grid_w * cfg.anchors_per_scale
        # Box and class terms only at the positives: (b, P, 5 + C) rows of target and head, rows
        # that are not positive all 0 in the target. Objectness is dense over the (b, S) slots.
        rows, slot, positive = target_rows(y_true, cfg, self.scale, size)
        obj_logits, row_logits = head.head_rows(
            y_pred, slot, 5 + cfg.num_classes, self.layout, cfg.anchors_per_scale
        )
        grid_wh = grid_size_wh(tf.stack([shape[0], grid_h, grid_w]))
        cell, anchor = slot_cell_anchor(slot, grid_w, cfg.anchors_per_scale)
        pred = true = overlap = None
        if box_loss.decoded or spec.obj_target == "iou":
            pred = decode_cells(row_logits, cfg, self.scale, anchor)
            true = box.target_in_cells(rows, cell, grid_wh)
        if box_loss.overlap is not None or spec.obj_target == "iou":
            overlap = (box_loss.overlap or boxes.iou)(pred, true)
        anchors = tf.gather(tf.constant(cfg.scale_anchors(self.scale)), anchor)
        stride = float(cfg.strides[self.scale])
        sums = box_loss.terms(
            box.BoxRows(rows, row_logits, pred, true, overlap, cell, anchors, stride, grid_wh, cfg)
        )

        obj_label = positive
        if spec.obj_target == "iou":
            # YOLOv5: tobj = iou.detach().clamp(0) (gr = 1), scattered back to the slots.
            iou_rows = rows[..., 4] * tf.stop_gradient(tf.maximum(overlap, 0.0))
            obj_label = rows_to_slots(iou_rows, slot, size)
        obj_loss = score_loss(
            obj_label,
            obj_logits,
            spec.score_loss,
            self._obj_pos_weight(positive),
            spec.focal_gamma,
        )
        negative_weight = self._negative_weight(y_true, y_pred, rows, positive, obj_loss)
        sums["obj"] = terms.objectness_term(positive, obj_loss, negative_weight)

        if spec.skip_single_class and cfg.num_classes == 1:
            sums["cls"] = tf.zeros_like(sums["obj"])
        else:
            loss_fn = functools.partial(
                score_loss,
                kind=spec.score_loss,
                pos_weight=spec.cls_pos_weight,
                focal_gamma=spec.focal_gamma,
            )
            sums["cls"] = terms.class_term(
                rows[..., 4], rows[..., 5:], row_logits[..., 5:], loss_fn, spec.label_smoothing
            )
        # Safe ratios and clamps (IoU of a NaN box is 0) would otherwise turn a non-finite input
        # into a finite, wrong loss; NaN makes it visible (e.g. to keras.callbacks.TerminateOnNaN).
        poison = _nan_unless_finite(y_true) + _nan_unless_finite(y_pred)
        if cfg.target_layout == "dense":
            poison += _nan_if_truncated(positive, cfg.max_positives(self.scale))
        return {key: value + poison for key, value in self._normalise(sums, positive).items()}

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return tf.add_n(list(self.components(y_true, y_pred).values()))

    def _obj_pos_weight(self, positive: tf.Tensor) -> float | tf.Tensor:
        """``obj_pos_weight``, or the study's ``0.5 · (slots − positives) / positives``."""
        weight = self.cfg.loss.obj_pos_weight
        if weight != "auto":
            return weight
        count = tf.reduce_sum(positive)
        slots = tf.cast(tf.size(positive), tf.float32)
        return 0.5 * tf.math.divide_no_nan(slots - count, count)

    def _negative_weight(
        self,
        y_true: tf.Tensor,
        y_pred: tf.Tensor,
        rows: tf.Tensor,
        positive: tf.Tensor,
        obj_loss: tf.Tensor,
    ) -> float | tf.Tensor:
        """``(b, S)`` weight of each negative's objectness: λnoobj × ignore mask × OHEM selection.

        ``rows`` and ``positive`` are :func:`kyolo.targets.target_rows`' rows and objectness.
        """
        cfg, spec = self.cfg, self.cfg.loss
        weight = spec.noobj_weight
        if spec.ignore_thresh is not None:
            if cfg.ignore_against == "image":
                true_boxes, valid = target_boxes(y_true, cfg)
            else:
                true_boxes, valid = rows[..., :4], rows[..., 4] > 0
            cells = self.layout.to_cells(tf.stop_gradient(y_pred))
            pred_boxes = decode_xywh(cells, cfg, self.scale)
            weight = weight * terms.ignore_mask(pred_boxes, true_boxes, valid, spec.ignore_thresh)
        if spec.ohem_ratio > 0:
            eligible = (positive == 0) & (weight * tf.ones_like(positive) > 0)
            picked = hard_negatives(obj_loss, eligible, terms.per_image(positive), spec.ohem_ratio)
            weight = weight * picked
        return weight

    def _normalise(self, sums: dict[str, tf.Tensor], positive: tf.Tensor) -> dict[str, tf.Tensor]:
        """Apply gains and ``term_reduction`` to the per-image sums."""
        cfg, spec = self.cfg, self.cfg.loss
        obj_gain = spec.obj_gain * (spec.balance[self.scale] if spec.balance else 1.0)
        gains = dict.fromkeys(self.box_loss.components, spec.box_gain)
        gains.update(obj=obj_gain, cls=spec.cls_gain)
        if spec.term_reduction == "sum":
            return {key: gains[key] * value for key, value in sums.items()}
        images = tf.cast(tf.shape(positive)[0], tf.float32)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        positives = tf.reduce_sum(positive)
        counts = dict.fromkeys(self.box_loss.components, positives)
        counts.update(obj=tf.cast(tf.size(positive), tf.float32), cls=positives * cfg.num_classes)
        # mean over images of B · b · s_i / N = B · Σ s_i / N, YOLOv5's batch-level mean × B.
        factor = images * images * replicas
        return {
            key: gains[key] * factor * tf.math.divide_no_nan(value, counts[key])
            for key, value in sums.items()
        }

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "cfg": self.cfg.to_dict(),
            "scale": self.scale,
            "head_layout": self.layout.name,
        }
