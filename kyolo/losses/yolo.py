"""``YoloLoss``: the Keras face of the YOLO loss, one instance per output scale."""

from __future__ import annotations

import functools
from typing import Any

import keras
import tensorflow as tf

from kyolo import boxes
from kyolo.config import YoloConfig
from kyolo.decode import (
    cell_grid,
    decode_cells,
    decode_xywh,
    grid_size_wh,
    log_wh_ratio,
    split_head,
)
from kyolo.encode.targets import target_boxes, target_grid
from kyolo.losses import box, terms
from kyolo.losses.ohem import hard_negatives
from kyolo.losses.scores import score_loss


def check_shapes(y_true: Any, y_pred: Any, cfg: YoloConfig, scale: int) -> None:
    """Raise ``ValueError`` unless one scale's ``y_true`` and ``y_pred`` fit ``cfg``.

    Checks the static shapes (at trace time), so that a loss attached to the wrong output, a head
    built for another class count or a target encoded with another config fails with expected
    versus got instead of a reshape error inside TensorFlow. Unknown dimensions are not checked.

    Args:
        y_true: one scale's batched target (:mod:`kyolo.encode.targets` layout of ``cfg``).
        y_pred: ``(b, gh, gw, A · (5 + C))`` raw head output.
    """
    where = f"YoloLoss(scale={scale})"
    count, depth = cfg.anchors_per_scale, 5 + cfg.num_classes
    pred = tf.TensorShape(y_pred.shape)
    true = tf.TensorShape(y_true.shape)
    if pred.rank is not None and pred.rank != 4:
        raise ValueError(f"{where}: y_pred must be (batch, grid_h, grid_w, channels), got {pred}")
    if pred.rank is not None and pred[3] is not None and pred[3] != count * depth:
        raise ValueError(
            f"{where}: y_pred has {pred[3]} channels, expected A·(5 + C) = {count}·(5 + "
            f"{cfg.num_classes}) = {count * depth} (anchors_per_scale={count}, "
            f"num_classes={cfg.num_classes})"
        )
    grid = (pred[1], pred[2]) if pred.rank is not None else (None, None)
    if cfg.ignore_against == "scale":
        expected = [None, *grid, count, depth]
        layout = "(batch, grid_h, grid_w, A, 5 + C)"
    else:
        rows = grid[0] * grid[1] * count + cfg.max_boxes if None not in grid else None
        expected = [None, rows, depth]
        layout = "(batch, grid_h · grid_w · A + max_boxes, 5 + C)"
    if true.rank is not None and (
        true.rank != len(expected)
        or any(e is not None and t is not None and e != t for e, t in zip(expected, true))
    ):
        raise ValueError(
            f"{where}: y_true shape {true} does not fit y_pred {pred}: expected {layout} = "
            f"{tf.TensorShape(expected)} for ignore_against={cfg.ignore_against!r}, "
            f"num_classes={cfg.num_classes}; cfg.input_size {cfg.input_size} gives grid "
            f"{cfg.grid_size(scale)} at this scale (stride {cfg.strides[scale]})"
        )


def _finite_per_image(values: Any) -> tf.Tensor:
    """``(b,)`` bool: every element of image ``i`` is finite."""
    values = tf.cast(values, tf.float32)
    return tf.reduce_all(tf.math.is_finite(tf.reshape(values, [tf.shape(values)[0], -1])), axis=1)


@keras.saving.register_keras_serializable(package="kyolo")
class YoloLoss(keras.losses.Loss):
    """YOLO loss of one output scale, as ``config.loss`` (:class:`kyolo.config.LossConfig`) says.

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
        config: the head configuration (or its ``to_dict()``).
        scale: which output this instance scores.

    ``y_true`` is one scale's target from :mod:`kyolo.encode` (batched); ``y_pred`` the raw
    ``(b, gh, gw, A * (5 + C))`` output of that scale, any float dtype.
    """

    def __init__(
        self,
        config: YoloConfig | dict[str, Any],
        scale: int,
        reduction: str = "sum_over_batch_size",
        name: str | None = None,
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name or f"yolo_loss_{scale}", reduction=reduction, dtype=dtype)
        self.config = YoloConfig.from_any(config)
        if not 0 <= scale < self.config.num_scales:
            raise ValueError(f"scale must be in [0, {self.config.num_scales}), got {scale}")
        self.scale = scale

    @property
    def component_names(self) -> tuple[str, ...]:
        """Keys of :meth:`components`: ``xy, wh`` for the keras-yolo3 and MSE box losses."""
        split_box = self.config.loss.box_loss in ("keras_yolo3", "mse")
        return ("xy", "wh", "obj", "cls") if split_box else ("box", "obj", "cls")

    def components(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> dict[str, tf.Tensor]:
        """The loss by :attr:`component_names`: ``(b,)`` per-image values, weighted and normalised.

        Gains, balance and ``term_reduction`` are applied; Keras' reduction is not.
        """
        cfg, spec = self.config, self.config.loss
        check_shapes(y_true, y_pred, cfg, self.scale)
        logits = split_head(y_pred, cfg)
        shape = tf.shape(logits)
        grid = tf.reshape(target_grid(y_true, cfg), shape)
        positive = grid[..., 4]
        grid_wh = grid_size_wh(shape)
        cell = cell_grid(shape[1], shape[2])
        pred = true = overlap = None
        if spec.box_loss != "keras_yolo3" or spec.obj_target == "iou":
            pred = decode_cells(logits, cfg, self.scale)
            true = box.target_in_cells(grid, cell, grid_wh)
        if spec.box_loss in box.OVERLAPS or spec.obj_target == "iou":
            overlap = box.OVERLAPS.get(spec.box_loss, boxes.iou)(pred, true)
        sums = self._box_terms(grid, logits, pred, true, overlap, cell, grid_wh)

        obj_label = positive
        if spec.obj_target == "iou":
            # YOLOv5: tobj = iou.detach().clamp(0) (gr = 1).
            obj_label = positive * tf.stop_gradient(tf.maximum(overlap, 0.0))
        obj_loss = score_loss(
            obj_label,
            logits[..., 4],
            spec.score_loss,
            self._obj_pos_weight(positive),
            spec.focal_gamma,
        )
        negative_weight = self._negative_weight(y_true, logits, positive, obj_loss)
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
                positive, grid[..., 5:], logits[..., 5:], loss_fn, spec.label_smoothing
            )
        # Safe ratios and clamps (IoU of a NaN box is 0) would otherwise turn a non-finite input
        # into a finite, wrong loss; NaN makes it visible (e.g. to keras.callbacks.TerminateOnNaN).
        poison = tf.where(_finite_per_image(y_true) & _finite_per_image(y_pred), 0.0, float("nan"))
        return {key: value + poison for key, value in self._normalise(sums, positive).items()}

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return tf.add_n(list(self.components(y_true, y_pred).values()))

    def _box_terms(
        self,
        grid: tf.Tensor,
        logits: tf.Tensor,
        pred: tf.Tensor | None,
        true: tf.Tensor | None,
        overlap: tf.Tensor | None,
        cell: tf.Tensor,
        grid_wh: tf.Tensor,
    ) -> dict[str, tf.Tensor]:
        """Per-image box sums of the configured ``box_loss`` (keyed as in the components)."""
        cfg, spec = self.config, self.config.loss
        anchors = cfg.scale_anchors(self.scale)
        stride = float(cfg.strides[self.scale])
        if spec.box_loss == "keras_yolo3":
            xy, wh = terms.keras_yolo3_box_terms(
                grid, logits, cell, anchors / (grid_wh * stride), grid_wh
            )
        elif spec.box_loss == "mse":
            xy, wh = box.mse_box_terms(
                pred[..., :2],
                log_wh_ratio(logits[..., 2:4], cfg.decode),
                true,
                anchors / stride,
                grid_wh,
                grid[..., 4],
                spec.sqrt_wh,
            )
        else:
            return {"box": box.overlap_box_term(overlap, grid[..., 4])}
        return {"xy": xy, "wh": wh}

    def _obj_pos_weight(self, positive: tf.Tensor) -> float | tf.Tensor:
        """``obj_pos_weight``, or the study's ``0.5 · (slots − positives) / positives``."""
        weight = self.config.loss.obj_pos_weight
        if weight != "auto":
            return weight
        count = tf.reduce_sum(positive)
        slots = tf.cast(tf.size(positive), tf.float32)
        return 0.5 * tf.math.divide_no_nan(slots - count, count)

    def _negative_weight(
        self, y_true: tf.Tensor, logits: tf.Tensor, positive: tf.Tensor, obj_loss: tf.Tensor
    ) -> float | tf.Tensor:
        """Weight of each negative's objectness: λnoobj × ignore mask × OHEM selection."""
        cfg, spec = self.config, self.config.loss
        weight = spec.noobj_weight
        flat = [tf.shape(positive)[0], -1]
        if spec.ignore_thresh is not None:
            true_boxes, valid = target_boxes(y_true, cfg)
            pred_boxes = tf.reshape(decode_xywh(logits, cfg, self.scale), [*flat, 4])
            ignore = terms.ignore_mask(pred_boxes, true_boxes, valid, spec.ignore_thresh)
            weight = weight * tf.reshape(ignore, tf.shape(positive))
        if spec.ohem_ratio > 0:
            eligible = (positive == 0) & (weight * tf.ones_like(positive) > 0)
            picked = hard_negatives(
                tf.reshape(obj_loss, flat),
                tf.reshape(eligible, flat),
                terms.per_image(positive),
                spec.ohem_ratio,
            )
            weight = weight * tf.reshape(picked, tf.shape(positive))
        return weight

    def _normalise(self, sums: dict[str, tf.Tensor], positive: tf.Tensor) -> dict[str, tf.Tensor]:
        """Apply gains and ``term_reduction`` to the per-image sums."""
        cfg, spec = self.config, self.config.loss
        obj_gain = spec.obj_gain * (spec.balance[self.scale] if spec.balance else 1.0)
        gains = {"xy": spec.box_gain, "wh": spec.box_gain, "box": spec.box_gain}
        gains.update(obj=obj_gain, cls=spec.cls_gain)
        if spec.term_reduction == "sum":
            return {key: gains[key] * value for key, value in sums.items()}
        images = tf.cast(tf.shape(positive)[0], tf.float32)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        positives = tf.reduce_sum(positive)
        counts = {"xy": positives, "wh": positives, "box": positives}
        counts.update(obj=tf.cast(tf.size(positive), tf.float32), cls=positives * cfg.num_classes)
        # mean over images of B · b · s_i / N = B · Σ s_i / N, YOLOv5's batch-level mean × B.
        scale = images * images * replicas
        return {
            key: gains[key] * scale * tf.math.divide_no_nan(value, counts[key])
            for key, value in sums.items()
        }

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "config": self.config.to_dict(), "scale": self.scale}
