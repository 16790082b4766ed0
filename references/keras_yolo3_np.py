"""Plain-numpy reference of qqwweee/keras-yolo3's target encoding and YOLOv3 loss.

Golden values for kyolo's tests. Written from the semantics of keras-yolo3 ``yolo3/model.py``
(``preprocess_true_boxes``, ``yolo_head``, ``box_iou``, ``yolo_loss``); it deliberately does not
import tensorflow, keras or kyolo. Loss math is float64.

Conventions (as in keras-yolo3):
    * ``input_shape`` is ``(height, width)``; anchors are ``(w, h)`` in input pixels.
    * 9 anchors -> 3 scales, masks ``[[6, 7, 8], [3, 4, 5], [0, 1, 2]]``, strides 32, 16, 8.
    * 6 anchors -> 2 scales, masks ``[[3, 4, 5], [1, 2, 3]]``, strides 32, 16. Anchor 3 belongs to
      both scales and anchor 0 to none (a box whose best anchor is 0 is dropped).
    * ``y_true[l]`` is ``(m, grid_h, grid_w, 3, 5 + C)`` holding ``(x, y, w, h)`` normalised by the
      input size, objectness, then per-class indicators.
"""

from __future__ import annotations

import numpy as np

from .boxes_np import anchor_wh_iou, pairwise_iou

LOSS_TERMS: tuple[str, ...] = ("xy", "wh", "confidence", "class")


def anchor_masks(num_anchors: int) -> list[list[int]]:
    """keras-yolo3's default anchor masks (one list per output scale, stride 32 first)."""
    if num_anchors == 9:
        return [[6, 7, 8], [3, 4, 5], [0, 1, 2]]
    if num_anchors == 6:
        return [[3, 4, 5], [1, 2, 3]]
    raise ValueError(f"keras-yolo3 supports 9 or 6 anchors, got {num_anchors}")


def strides(num_anchors: int) -> list[int]:
    """Input pixels per grid cell of each scale: 32, 16[, 8]."""
    return [32, 16, 8][: len(anchor_masks(num_anchors))]


# --------------------------------------------------------------------------------------------
# Target encoding
# --------------------------------------------------------------------------------------------


def preprocess_true_boxes(
    true_boxes, input_shape, anchors, num_classes: int, *, float32_cells: bool = True
) -> list[np.ndarray]:
    """Encode absolute-pixel boxes into keras-yolo3's per-scale ``y_true`` arrays.

    Args:
        true_boxes: ``(m, T, 5)`` rows of ``x_min, y_min, x_max, y_max, class_id`` in input pixels.
            Rows with ``x_max - x_min <= 0`` are padding (keras-yolo3 only looks at the width).
        input_shape: ``(h, w)`` of the network input.
        anchors: ``(N, 2)`` anchor ``(w, h)`` in pixels, N = 9 or 6.
        num_classes: number of classes C.
        float32_cells: keras-yolo3 stores the normalised centre in a float32 array and then computes
            the cell as ``floor(x_f32 * grid_w)`` in float64. Because ``x_f32`` is rounded, a centre
            lying exactly on a cell boundary can land one cell too low (e.g. 416 input, centre
            x = 240 px, stride 16: cell 14 instead of 15). ``True`` (default) reproduces that;
            ``False`` uses the exact cell ``floor(cx_px * grid_w / w)``.

    Returns:
        List (stride 32 first) of float32 arrays ``(m, h // stride, w // stride, 3, 5 + C)``.

    Semantics / quirks reproduced from keras-yolo3:
        * The boxes are first cast to float32, and the centre uses *floor* division in pixels:
          ``cx = (x_min + x_max) // 2``; ``w = x_max - x_min``. Both are then divided by the input
          width (height for y) and stored as float32.
        * Best anchor = argmax over *all* anchors of the IoU of the box and anchor sizes with
          their centres aligned (first anchor wins a tie). The box is written on every scale
          whose mask contains that anchor, in cell ``i = floor(x * grid_w)``,
          ``j = floor(y * grid_h)`` and slot ``k = mask.index(best)``.
        * Boxes are written in row order: a later box in the same cell/slot overwrites the
          earlier one's ``xywh``, objectness stays 1 and class indicators accumulate (two classes
          can both be 1).
        * A box with width > 0 but height <= 0 is *not* padding: its IoU with every anchor is 0,
          so it goes to anchor 0.

    Difference from keras-yolo3 (a bug there): keras-yolo3 computes the best anchors of the
    *filtered* (non-padding) boxes but then reads ``true_boxes[b, t]`` with the *filtered* index
    ``t``, so a padding row placed before a real box shifts which row's coordinates are written.
    This reference uses each box's own row. The two agree whenever padding rows are trailing
    (the usual layout).

    Also unlike keras-yolo3 (which asserts only ``class < num_classes`` and would wrap negative
    indices), a negative class id or a box centre outside the grid raises ``ValueError``.
    """
    anchors = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
    masks = anchor_masks(len(anchors))
    layer_strides = strides(len(anchors))

    # keras-yolo3 does `np.array(true_boxes, dtype='float32')` first: all pixel arithmetic
    # below happens on float32 values, which is what ends up stored in y_true.
    boxes = np.array(true_boxes, dtype=np.float32)
    if boxes.ndim != 3 or boxes.shape[-1] != 5:
        raise ValueError(f"true_boxes must be (m, T, 5), got {boxes.shape}")
    if not (boxes[..., 4] < num_classes).all():
        raise ValueError("class id must be less than num_classes")
    if (boxes[..., 4] < 0).any():
        raise ValueError("class id must be >= 0")

    in_h, in_w = int(input_shape[0]), int(input_shape[1])
    in_wh = np.array([in_w, in_h], dtype=np.float64)

    centre_px = (boxes[..., 0:2] + boxes[..., 2:4]) // 2  # float32, floored to whole pixels
    size_px = boxes[..., 2:4] - boxes[..., 0:2]  # float32
    # Normalise in float64 and store rounded to float32 (as keras-yolo3's float32 array does).
    centre_norm = (centre_px.astype(np.float64) / in_wh).astype(np.float32)
    size_norm = (size_px.astype(np.float64) / in_wh).astype(np.float32)

    m, num_rows = boxes.shape[:2]
    grids = [(in_h // s, in_w // s) for s in layer_strides]
    y_true = [
        np.zeros((m, gh, gw, len(mask), 5 + num_classes), dtype=np.float32)
        for (gh, gw), mask in zip(grids, masks, strict=True)
    ]

    for b in range(m):
        for t in range(num_rows):
            if not size_px[b, t, 0] > 0:
                continue  # padding row (only the width is checked)
            best = int(np.argmax(anchor_wh_iou(size_px[b, t], anchors)[0]))  # first on ties
            cls = int(boxes[b, t, 4])  # astype('int32'): truncation

            for layer, mask in enumerate(masks):
                if best not in mask:
                    continue
                gh, gw = grids[layer]
                if float32_cells:
                    i = int(np.floor(np.float64(centre_norm[b, t, 0]) * gw))
                    j = int(np.floor(np.float64(centre_norm[b, t, 1]) * gh))
                else:
                    i = int(centre_px[b, t, 0]) * gw // in_w
                    j = int(centre_px[b, t, 1]) * gh // in_h
                if not (0 <= i < gw and 0 <= j < gh):
                    raise ValueError(
                        f"box {t} of image {b} has its centre outside the input: cell ({j}, {i})"
                    )
                k = mask.index(best)
                cell = y_true[layer][b, j, i, k]
                cell[0:2] = centre_norm[b, t]
                cell[2:4] = size_norm[b, t]
                cell[4] = 1.0
                cell[5 + cls] = 1.0
    return y_true


# --------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------


def sigmoid(x) -> np.ndarray:
    """Overflow-free logistic function."""
    return np.exp(-np.logaddexp(0.0, -np.asarray(x, dtype=np.float64)))


def bce_with_logits(labels, logits) -> np.ndarray:
    """Elementwise ``sigmoid_cross_entropy_with_logits`` (labels ``z`` may be any real).

    ``max(x, 0) - x * z + log1p(exp(-|x|))``, the form TensorFlow uses.
    """
    z = np.asarray(labels, dtype=np.float64)
    x = np.asarray(logits, dtype=np.float64)
    return np.maximum(x, 0.0) - x * z + np.log1p(np.exp(-np.abs(x)))


def yolo_head(feats, layer_anchors, num_classes: int, input_shape):
    """Decode one raw output like keras-yolo3's ``yolo_head(..., calc_loss=True)``.

    Args:
        feats: ``(m, gh, gw, A * (5 + C))`` raw logits.
        layer_anchors: ``(A, 2)`` anchors of this scale in pixels.
        input_shape: ``(h, w)`` of the network input.

    Returns:
        ``grid`` ``(gh, gw, 1, 2)`` holding ``(column, row)``; ``raw`` ``(m, gh, gw, A, 5 + C)``;
        ``box_xy = (sigmoid(t_xy) + grid) / (gw, gh)``;
        ``box_wh = exp(t_wh) * anchor / (in_w, in_h)``.
    """
    feats = np.asarray(feats, dtype=np.float64)
    layer_anchors = np.asarray(layer_anchors, dtype=np.float64).reshape(-1, 2)
    num_anchors = len(layer_anchors)
    m, gh, gw, channels = feats.shape
    if channels != num_anchors * (5 + num_classes):
        raise ValueError(f"expected {num_anchors * (5 + num_classes)} channels, got {channels}")
    raw = feats.reshape(m, gh, gw, num_anchors, 5 + num_classes)

    cols, rows = np.meshgrid(np.arange(gw), np.arange(gh))  # each (gh, gw)
    grid = np.stack([cols, rows], axis=-1).astype(np.float64)[:, :, None, :]

    grid_wh = np.array([gw, gh], dtype=np.float64)
    input_wh = np.array([input_shape[1], input_shape[0]], dtype=np.float64)
    box_xy = (sigmoid(raw[..., 0:2]) + grid) / grid_wh
    box_wh = np.exp(raw[..., 2:4]) * layer_anchors / input_wh
    return grid, raw, box_xy, box_wh


def yolo_loss_components(
    yolo_outputs, y_true, anchors, num_classes: int, ignore_thresh: float = 0.5
) -> dict[tuple[int, str], float]:
    """keras-yolo3's ``yolo_loss`` split per scale and term.

    Args:
        yolo_outputs: raw outputs, stride 32 first, each ``(m, gh, gw, 3 * (5 + C))``.
        y_true: per-scale targets as produced by :func:`preprocess_true_boxes`.
        anchors: ``(N, 2)`` pixels, N = 9 or 6.
        num_classes: C.
        ignore_thresh: a no-object prediction whose best IoU with that scale's true boxes is
            ``>= ignore_thresh`` is excluded from the confidence loss.

    Returns:
        ``{(layer, term): value}`` for ``term`` in ``("xy", "wh", "confidence", "class")``; each
        value is the term summed over the batch and divided by the batch size ``m``.

    Semantics (keras-yolo3):
        * ``input_shape = grid(yolo_outputs[0]) * 32`` regardless of the real input.
        * ``raw_true_xy = y_xy * (gw, gh) - grid``;
          ``raw_true_wh = log(y_wh / anchor * (in_w, in_h))``, set to 0 where objectness is 0.
        * ``box_loss_scale = 2 - w * h`` (normalised true w, h).
        * ignore mask, per image and scale: best IoU of each decoded prediction against the boxes
          of *that scale's* ``y_true`` with objectness != 0 (none -> best IoU is -inf, so
          nothing is ignored); ``ignore = best_iou < ignore_thresh``.
        * ``xy = obj * box_loss_scale * BCE(raw_true_xy, t_xy)`` (a BCE with soft labels, not a
          square);
          ``wh = obj * box_loss_scale * 0.5 * (raw_true_wh - t_wh)^2``;
          ``confidence = obj * BCE(obj, t_o) + (1 - obj) * BCE(obj, t_o) * ignore``;
          ``class = obj * BCE(class_indicators, t_cls)``.
    """
    anchors = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
    masks = anchor_masks(len(anchors))
    if len(yolo_outputs) != len(masks) or len(y_true) != len(masks):
        raise ValueError(f"{len(anchors)} anchors need {len(masks)} outputs and targets")

    first = np.asarray(yolo_outputs[0])
    m = first.shape[0]
    input_shape = (first.shape[1] * 32, first.shape[2] * 32)  # (h, w)
    input_wh = np.array([input_shape[1], input_shape[0]], dtype=np.float64)

    components: dict[tuple[int, str], float] = {}
    for layer, mask in enumerate(masks):
        layer_anchors = anchors[mask]
        grid, raw, pred_xy, pred_wh = yolo_head(
            yolo_outputs[layer], layer_anchors, num_classes, input_shape
        )
        target = np.asarray(y_true[layer], dtype=np.float64)
        if target.shape != raw.shape:
            raise ValueError(f"y_true[{layer}] is {target.shape}, outputs decode to {raw.shape}")
        gh, gw = raw.shape[1:3]

        obj = target[..., 4:5]  # used by value, like keras-yolo3
        has_obj = obj != 0  # used where keras-yolo3 casts to bool
        true_cls = target[..., 5:]

        raw_true_xy = target[..., 0:2] * np.array([gw, gh], dtype=np.float64) - grid
        # log only where there is an object (keras-yolo3 computes log(0) = -inf and then
        # switches it to 0; same result without the warning).
        wh_ratio = np.where(has_obj, target[..., 2:4] / layer_anchors * input_wh, 1.0)
        raw_true_wh = np.log(wh_ratio)
        box_loss_scale = 2.0 - target[..., 2:3] * target[..., 3:4]

        # Ignore mask: decoded predictions vs this scale's assigned true boxes, image by image.
        pred_box = np.concatenate([pred_xy, pred_wh], axis=-1)
        ignore = np.empty(obj.shape, dtype=np.float64)
        for b in range(m):
            true_boxes_b = target[b][has_obj[b, ..., 0]][:, 0:4]  # (num_true, 4)
            if len(true_boxes_b) == 0:
                ignore[b] = 1.0  # max over no boxes is -inf < thresh
                continue
            best_iou = pairwise_iou(pred_box[b].reshape(-1, 4), true_boxes_b).max(axis=-1)
            ignore[b] = (best_iou < ignore_thresh).reshape(gh, gw, -1, 1)

        xy = obj * box_loss_scale * bce_with_logits(raw_true_xy, raw[..., 0:2])
        wh = obj * box_loss_scale * 0.5 * (raw_true_wh - raw[..., 2:4]) ** 2
        conf_bce = bce_with_logits(obj, raw[..., 4:5])
        confidence = obj * conf_bce + (1.0 - obj) * conf_bce * ignore
        cls = obj * bce_with_logits(true_cls, raw[..., 5:])

        for name, term in zip(LOSS_TERMS, (xy, wh, confidence, cls), strict=True):
            components[(layer, name)] = float(np.sum(term) / m)
    return components


def yolo_loss(yolo_outputs, y_true, anchors, num_classes: int, ignore_thresh: float = 0.5) -> float:
    """keras-yolo3's total YOLOv3 loss: the sum of :func:`yolo_loss_components`."""
    components = yolo_loss_components(yolo_outputs, y_true, anchors, num_classes, ignore_thresh)
    return float(sum(components.values()))
