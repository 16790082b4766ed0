"""Independent float64 NumPy re-implementation of the YOLOv5 training loss.

Golden-value reference for kyolo's tests. It mirrors, semantically,

* ``utils/loss.py`` of ultralytics/yolov5 (AGPL-3.0 header era, commit 0010427):
  ``smooth_BCE``, ``FocalLoss``, ``ComputeLoss.__call__`` and ``ComputeLoss.build_targets``
  with ``sort_obj_iou = False``, ``gr = 1.0`` and ``autobalance = False``;
* ``utils/metrics.py`` ``bbox_iou(box1, box2, xywh=True, CIoU=True, eps=1e-7)`` in its v7.0+
  form (commit 01fc291): ``union = w1*h1 + w2*h2 - inter + eps``, ``c2 = cw**2 + ch**2 + eps``,
  ``v = 4/pi**2 * (atan(w2/h2) - atan(w1/h1))**2`` (no eps inside the atan for the xywh branch),
  ``alpha = v / (v - iou + (1 + eps))`` computed under ``torch.no_grad()``.
  (Older revisions, e.g. commit ee97747, used ``atan(w/(h + eps))``; the difference is of
  order 1e-7 relative and irrelevant for positive box sizes.)

No deep-learning framework is imported; everything is plain NumPy in float64. The code is a
re-derivation written for readability, not a transliteration; comments flag the places where
YOLOv5's behaviour is subtle.

Public API
----------
``compute_loss(p, targets, anchors, strides, hyp) -> (total, (lbox, lobj, lcls))``
``compute_loss_grad(p, targets, anchors, strides, hyp, eps=1e-6) -> list[np.ndarray]``
plus the building blocks ``sigmoid``, ``bce_with_logits``, ``focal_factor``, ``smooth_bce``,
``bbox_ciou``, ``build_targets`` and ``forward_details`` (loss + intermediate tensors).

Layouts
-------
``p[i]``      (b, na, ny, nx, 5 + nc) raw logits, channel order x, y, w, h, obj, cls...
``targets``   (n, 6) rows ``[image, class, x, y, w, h]``, xywh normalised to the input image.
``anchors``   (nl, na, 2) in *pixels*; they are divided by ``strides[i]`` (grid units), which is
              what YOLOv5's ``Model`` does to ``Detect.anchors`` before ``ComputeLoss`` uses them.
``strides``   length-nl sequence, e.g. ``[8, 16, 32]``.
``hyp``       dict with ``box, obj, cls, cls_pw, obj_pw, fl_gamma, anchor_t`` and optionally
              ``label_smoothing`` (default 0.0, as ``h.get("label_smoothing", 0.0)`` in YOLOv5).
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-7  # bbox_iou's default eps in YOLOv5
FOCAL_ALPHA = 0.25  # FocalLoss default alpha (ComputeLoss only passes gamma)
NEIGHBOUR_BIAS = 0.5  # "g" in build_targets

# Cell offsets in grid units, in YOLOv5's order: centre, then j, k, l, m.
# The cell index is floor(gxy - offset), so +0.5 in x selects the cell to the LEFT.
_OFFSETS = NEIGHBOUR_BIAS * np.array(
    [
        [0.0, 0.0],  # centre cell
        [1.0, 0.0],  # j: x fraction < 0.5 -> left neighbour
        [0.0, 1.0],  # k: y fraction < 0.5 -> upper neighbour
        [-1.0, 0.0],  # l: x fraction > 0.5 -> right neighbour
        [0.0, -1.0],  # m: y fraction > 0.5 -> lower neighbour
    ]
)


# --------------------------------------------------------------------------------------------
# Elementwise helpers
# --------------------------------------------------------------------------------------------
def sigmoid(x):
    """Numerically stable logistic function (tanh form has no overflow for large |x|)."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _log_sigmoid(x):
    """log(sigmoid(x)) = -softplus(-x), stable for all x."""
    return -np.logaddexp(0.0, -np.asarray(x, dtype=np.float64))


def bce_with_logits(x, z, pos_weight=1.0):
    """Elementwise ``torch.nn.BCEWithLogitsLoss(reduction='none', pos_weight=pw)``.

    loss = -(pw * z * log(sigmoid(x)) + (1 - z) * log(1 - sigmoid(x))), with
    log(1 - sigmoid(x)) = log(sigmoid(-x)). pos_weight only scales the positive term.
    """
    x = np.asarray(x, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    return -(pos_weight * z * _log_sigmoid(x) + (1.0 - z) * _log_sigmoid(-x))


def focal_factor(x, z, gamma, alpha=FOCAL_ALPHA):
    """The multiplier YOLOv5's FocalLoss applies to the elementwise BCE (TF-addons form).

    p = sigmoid(x); p_t = z*p + (1-z)*(1-p); alpha_factor = z*alpha + (1-z)*(1-alpha);
    modulating_factor = (1 - p_t)**gamma. Note it uses the *soft* target z directly (label
    smoothing / IoU targets are not binarised).
    """
    prob = sigmoid(x)
    z = np.asarray(z, dtype=np.float64)
    p_t = z * prob + (1.0 - z) * (1.0 - prob)
    alpha_factor = z * alpha + (1.0 - z) * (1.0 - alpha)
    return alpha_factor * (1.0 - p_t) ** gamma


def _criterion_mean(x, z, pos_weight, fl_gamma):
    """BCEWithLogits (mean) or FocalLoss(BCEWithLogits, gamma) (mean), as set up by ComputeLoss."""
    loss = bce_with_logits(x, z, pos_weight)
    if fl_gamma > 0:
        loss = loss * focal_factor(x, z, fl_gamma)
    return float(np.mean(loss))


def smooth_bce(eps=0.1):
    """YOLOv5 ``smooth_BCE``: (positive, negative) class targets = (1 - eps/2, eps/2)."""
    return 1.0 - 0.5 * eps, 0.5 * eps


# --------------------------------------------------------------------------------------------
# CIoU
# --------------------------------------------------------------------------------------------
def bbox_ciou(box1, box2, eps=EPS, alpha=None):
    """Row-wise CIoU of xywh boxes (n, 4) vs (n, 4), YOLOv5 ``bbox_iou(..., CIoU=True)``.

    Returns ``(ciou, iou, alpha)`` as (n,) arrays. ``alpha`` is the CIoU trade-off weight,
    which YOLOv5 computes under ``no_grad``; pass a previously returned ``alpha`` to use it as
    a frozen constant (for finite-difference gradients that match autograd).
    """
    box1 = np.asarray(box1, dtype=np.float64).reshape(-1, 4)
    box2 = np.asarray(box2, dtype=np.float64).reshape(-1, 4)
    x1, y1, w1, h1 = box1.T
    x2, y2, w2, h2 = box2.T

    # corners
    b1_x1, b1_x2, b1_y1, b1_y2 = x1 - w1 / 2, x1 + w1 / 2, y1 - h1 / 2, y1 + h1 / 2
    b2_x1, b2_x2, b2_y1, b2_y2 = x2 - w2 / 2, x2 + w2 / 2, y2 - h2 / 2, y2 + h2 / 2

    inter_w = np.clip(np.minimum(b1_x2, b2_x2) - np.maximum(b1_x1, b2_x1), 0.0, None)
    inter_h = np.clip(np.minimum(b1_y2, b2_y2) - np.maximum(b1_y1, b2_y1), 0.0, None)
    inter = inter_w * inter_h
    union = w1 * h1 + w2 * h2 - inter + eps  # eps added to the union
    iou = inter / union

    # smallest enclosing box diagonal (squared, + eps) and centre distance (squared)
    cw = np.maximum(b1_x2, b2_x2) - np.minimum(b1_x1, b2_x1)
    ch = np.maximum(b1_y2, b2_y2) - np.minimum(b1_y1, b2_y1)
    c2 = cw**2 + ch**2 + eps
    # written from corner sums like YOLOv5 (== (x2-x1)^2 + (y2-y1)^2 up to rounding)
    rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2) ** 2 + (b2_y1 + b2_y2 - b1_y1 - b1_y2) ** 2) / 4

    # aspect-ratio consistency term; v7.0+ metrics.py has no eps inside the atan (xywh branch)
    v = (4.0 / math.pi**2) * (np.arctan(w2 / h2) - np.arctan(w1 / h1)) ** 2
    if alpha is None:
        alpha = v / (v - iou + (1.0 + eps))
    else:
        alpha = np.asarray(alpha, dtype=np.float64)
    ciou = iou - (rho2 / c2 + v * alpha)
    return ciou, iou, alpha


# --------------------------------------------------------------------------------------------
# Target assignment
# --------------------------------------------------------------------------------------------
def build_targets(shapes, targets, anchors_grid, anchor_t):
    """YOLOv5 ``ComputeLoss.build_targets``.

    Args:
        shapes: per-layer prediction shapes (b, na, ny, nx, no).
        targets: (n, 6) ``[image, class, x, y, w, h]`` normalised.
        anchors_grid: (nl, na, 2) anchors in GRID units of each layer.
        anchor_t: anchor-multiple threshold.

    Returns per-layer lists ``tcls, tbox, indices, anch`` where ``indices[i] = (b, a, gj, gi)``
    (int64 arrays) and ``tbox[i]`` is (m, 4) ``[gx - gi, gy - gj, gw, gh]``.

    Row order reproduces YOLOv5 exactly (it matters for duplicate objectness writes):
    offset-major (centre, j, k, l, m), then anchor index, then target row.
    """
    targets = np.asarray(targets, dtype=np.float64).reshape(-1, 6)
    anchors_grid = np.asarray(anchors_grid, dtype=np.float64)
    nt = targets.shape[0]
    na = anchors_grid.shape[1]
    g = NEIGHBOUR_BIAS

    tcls, tbox, indices, anch = [], [], [], []
    for i, shape in enumerate(shapes):
        ny, nx = int(shape[2]), int(shape[3])
        anchors = anchors_grid[i]  # (na, 2)

        # targets scaled to this grid: x, w by nx; y, h by ny. Shape (na, nt, 7), last col = anchor
        gain = np.array([1.0, 1.0, nx, ny, nx, ny])
        t = np.empty((na, nt, 7))
        t[..., :6] = targets * gain
        t[..., 6] = np.arange(na, dtype=np.float64)[:, None]

        if nt:
            # anchor match: the worse of w- and h-ratio (each taken as >= 1) must be < anchor_t
            r = t[..., 4:6] / anchors[:, None, :]
            keep = np.maximum(r, 1.0 / r).max(axis=2) < anchor_t  # (na, nt)
            t = t[keep]  # (m, 7), row-major over (anchor, target)

            gxy = t[:, 2:4]
            gxi = np.array([nx, ny], dtype=np.float64) - gxy  # distance to the far edge
            # x (resp. y) fraction < 0.5 and not in the first cell -> also use left (upper) cell
            left_up = (np.mod(gxy, 1.0) < g) & (gxy > 1.0)
            # fraction > 0.5 (measured from the far edge) and not in the last cell -> right (lower)
            right_down = (np.mod(gxi, 1.0) < g) & (gxi > 1.0)
            sel = np.stack(
                [
                    np.ones(t.shape[0], dtype=bool),
                    left_up[:, 0],
                    left_up[:, 1],
                    right_down[:, 0],
                    right_down[:, 1],
                ]
            )  # (5, m)
            t = np.broadcast_to(t, (5,) + t.shape)[sel]
            offsets = np.broadcast_to(_OFFSETS[:, None, :], (5, sel.shape[1], 2))[sel]
        else:
            t = np.zeros((0, 7))
            offsets = np.zeros((0, 2))

        b = t[:, 0].astype(np.int64)
        c = t[:, 1].astype(np.int64)
        gxy = t[:, 2:4]
        gwh = t[:, 4:6]
        a = t[:, 6].astype(np.int64)
        # torch ``.long()`` truncates toward zero (same as floor for the non-negative values here)
        gij = np.trunc(gxy - offsets).astype(np.int64)
        # SUBTLE: YOLOv5 does ``gi, gj = gij.T`` (views) and clamps them in place *before*
        # computing ``tbox = gxy - gij``, so the box offset is relative to the CLAMPED cell.
        # (Only matters for a centre exactly on the far edge, e.g. x == 1.0.)
        gij[:, 0] = np.clip(gij[:, 0], 0, nx - 1)
        gij[:, 1] = np.clip(gij[:, 1], 0, ny - 1)
        gi, gj = gij[:, 0], gij[:, 1]

        indices.append((b, a, gj, gi))
        tbox.append(np.concatenate([gxy - gij, gwh], axis=1))
        anch.append(anchors[a])
        tcls.append(c)
    return tcls, tbox, indices, anch


def _balance(nl):
    return [4.0, 1.0, 0.4] if nl == 3 else [4.0, 1.0, 0.25, 0.06, 0.02]


def _scatter_last_wins(shape, b, a, gj, gi, values):
    """tobj[b, a, gj, gi] = values where a repeated slot keeps the LAST row's value.

    In YOLOv5 (sort_obj_iou False) ``tobj[b, a, gj, gi] = iou`` with duplicate indices; torch
    leaves the winner unspecified, in practice (CPU) the last write wins. NumPy's fancy
    assignment does not guarantee an order either, so the de-duplication is explicit here.
    "Last" is in build_targets row order (offset, anchor, target), not target-row order.
    """
    out = np.zeros(shape[:4], dtype=np.float64)
    if len(b) == 0:
        return out
    flat = np.ravel_multi_index((b, a, gj, gi), shape[:4])
    _, first_in_reversed = np.unique(flat[::-1], return_index=True)
    last = len(flat) - 1 - first_in_reversed
    out.reshape(-1)[flat[last]] = values[last]
    return out


# --------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------
def forward_details(p, targets, anchors, strides, hyp, frozen=None):
    """Compute the YOLOv5 loss and expose intermediates.

    Args:
        frozen: optional dict as returned in ``details["frozen"]`` of a previous call. When
            given, the CIoU ``alpha`` and the objectness targets (``tobj``) are taken from it as
            constants instead of being recomputed from ``p``. This reproduces autograd's view
            of the function (YOLOv5 computes alpha under no_grad and detaches the IoU used as
            objectness target), so finite differences of the frozen function equal the
            gradients torch would produce.

    Returns:
        dict with ``total, lbox, lobj, lcls, bs, tcls, tbox, indices, anch, tobj, iou``
        (per-layer lists) and ``frozen`` ({"alpha": [...], "tobj": [...]}).
    """
    p = [np.asarray(pi, dtype=np.float64) for pi in p]
    nl = len(p)
    anchors = np.asarray(anchors, dtype=np.float64).reshape(nl, -1, 2)
    strides = np.asarray(strides, dtype=np.float64).reshape(nl)
    anchors_grid = anchors / strides[:, None, None]  # pixels -> grid units

    nc = p[0].shape[-1] - 5
    cp, cn = smooth_bce(hyp.get("label_smoothing", 0.0))
    fl_gamma = float(hyp["fl_gamma"])
    cls_pw, obj_pw = float(hyp["cls_pw"]), float(hyp["obj_pw"])
    balance = _balance(nl)
    gr = 1.0  # iou ratio: objectness target = (1 - gr) + gr * iou = iou

    tcls, tbox, indices, anch = build_targets(
        [pi.shape for pi in p], targets, anchors_grid, float(hyp["anchor_t"])
    )

    lbox = lobj = lcls = 0.0
    alphas, tobjs, ious = [], [], []
    for i, pi in enumerate(p):
        b, a, gj, gi = indices[i]
        n = len(b)
        if n:
            ps = pi[b, a, gj, gi]  # (n, 5 + nc)
            pxy = sigmoid(ps[:, 0:2]) * 2.0 - 0.5  # in (-0.5, 1.5) cells from gij
            pwh = (sigmoid(ps[:, 2:4]) * 2.0) ** 2 * anch[i]  # in (0, 4) anchors
            pbox = np.concatenate([pxy, pwh], axis=1)
            alpha_in = None if frozen is None else frozen["alpha"][i]
            ciou, _, alpha = bbox_ciou(pbox, tbox[i], alpha=alpha_in)
            lbox += float(np.mean(1.0 - ciou))

            if frozen is None:
                # detached, clamped at 0 (CIoU can be negative); gr == 1 -> target is the IoU
                iou_t = (1.0 - gr) + gr * np.clip(ciou, 0.0, None)
                tobj = _scatter_last_wins(pi.shape, b, a, gj, gi, iou_t)
            else:
                tobj = frozen["tobj"][i]

            if nc > 1:  # class loss only with several classes
                t = np.full((n, nc), cn)
                t[np.arange(n), tcls[i]] = cp
                lcls += _criterion_mean(ps[:, 5:], t, cls_pw, fl_gamma)
        else:
            ciou = alpha = np.zeros(0)
            tobj = np.zeros(pi.shape[:4]) if frozen is None else frozen["tobj"][i]

        alphas.append(alpha)
        tobjs.append(tobj)
        ious.append(ciou)
        # objectness over every cell of every anchor of every image, mean-reduced per layer
        lobj += _criterion_mean(pi[..., 4], tobj, obj_pw, fl_gamma) * balance[i]

    lbox *= float(hyp["box"])
    lobj *= float(hyp["obj"])
    lcls *= float(hyp["cls"])
    bs = p[-1].shape[0]  # YOLOv5 reads it from the last layer's tobj
    return {
        "total": (lbox + lobj + lcls) * bs,
        "lbox": lbox,
        "lobj": lobj,
        "lcls": lcls,
        "bs": bs,
        "tcls": tcls,
        "tbox": tbox,
        "indices": indices,
        "anch": anch,
        "tobj": tobjs,
        "iou": ious,
        "frozen": {"alpha": alphas, "tobj": tobjs},
    }


def compute_loss(p, targets, anchors, strides, hyp):
    """YOLOv5 ``ComputeLoss(model)(p, targets)``.

    Returns ``(total, (lbox, lobj, lcls))`` with total = (lbox + lobj + lcls) * batch_size and
    the components already multiplied by their hyp gains (not by batch size).
    """
    d = forward_details(p, targets, anchors, strides, hyp)
    return d["total"], (d["lbox"], d["lobj"], d["lcls"])


def compute_loss_grad(p, targets, anchors, strides, hyp, eps=1e-6):
    """d total / d p[i] by central finite differences, matching torch autograd semantics.

    YOLOv5 detaches the IoU used as objectness target and computes CIoU's alpha under
    ``no_grad``; a naive finite difference of ``compute_loss`` would differentiate through
    both. Here they are evaluated once at the unperturbed ``p`` and then held constant
    (``forward_details(..., frozen=...)``) while each logit is perturbed by +-eps.
    Target assignment depends only on shapes, so it is constant anyway. The loss has kinks
    (clamps/min/max in the IoU), so keep test points away from them.

    Cost is 2 * p.size loss evaluations: intended for small test tensors only.
    """
    p = [np.array(pi, dtype=np.float64, copy=True) for pi in p]
    frozen = forward_details(p, targets, anchors, strides, hyp)["frozen"]

    def total():
        return forward_details(p, targets, anchors, strides, hyp, frozen=frozen)["total"]

    grads = []
    for pi in p:
        g = np.zeros_like(pi)
        flat, gflat = pi.reshape(-1), g.reshape(-1)  # views
        for k in range(flat.size):
            orig = flat[k]
            flat[k] = orig + eps
            up = total()
            flat[k] = orig - eps
            down = total()
            flat[k] = orig
            gflat[k] = (up - down) / (2.0 * eps)
        grads.append(g)
    return grads
