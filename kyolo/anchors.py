"""Anchor sizes by k-means on box sizes with ``1 − IoU`` as the distance (YOLOv2, sec. 2).

Sizes are ``(w, h)`` in network-input pixels; :func:`letterboxed_wh` gives a dataset's boxes in
that frame, :func:`dataset_anchors` fits its anchors, and :meth:`kyolo.config.YoloConfig.
with_geometry` places them on the model's scales.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kyolo.config import YoloConfig
from kyolo.data.annotations import Annotation
from kyolo.geometry import letterbox_ratio


def wh_iou(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """``(n, 2)`` sizes × ``(k, 2)`` anchors → ``(n, k)`` IoU with both centred together."""
    inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(
        wh[:, None, 1], anchors[None, :, 1]
    )
    union = wh[:, None, 0] * wh[:, None, 1] + anchors[None, :, 0] * anchors[None, :, 1] - inter
    return inter / union


def mean_best_iou(wh: np.ndarray, anchors: np.ndarray) -> float:
    """Mean over boxes of the IoU with their best anchor: how well ``anchors`` fit ``wh``."""
    return float(wh_iou(np.asarray(wh, np.float64), np.asarray(anchors, np.float64)).max(1).mean())


def kmeans_anchors(
    wh: np.ndarray, k: int, *, seed: int = 0, iterations: int = 300
) -> tuple[np.ndarray, float]:
    """Cluster box sizes into ``k`` anchors; returns ``(anchors (k, 2) by area, mean best IoU)``.

    Lloyd's algorithm with IoU assignment and median updates, started from k-means++ style
    seeding on ``1 − IoU``; deterministic for a given ``seed``.
    """
    wh = np.asarray(wh, np.float64).reshape(-1, 2)
    if len(wh) < k:
        raise ValueError(f"need at least k={k} boxes to fit {k} anchors, got {len(wh)}")
    if np.any(wh <= 0) or not np.all(np.isfinite(wh)):
        raise ValueError("box sizes must be positive and finite")
    rng = np.random.default_rng(seed)
    centres = [wh[rng.integers(len(wh))]]
    for _ in range(1, k):
        distance = 1 - wh_iou(wh, np.array(centres)).max(axis=1)
        centres.append(wh[rng.choice(len(wh), p=distance / distance.sum())])
    anchors = np.array(centres)
    for _ in range(iterations):
        nearest = wh_iou(wh, anchors).argmax(axis=1)
        updated = np.array(
            [
                np.median(wh[nearest == j], axis=0) if np.any(nearest == j) else anchors[j]
                for j in range(k)
            ]
        )
        if np.allclose(updated, anchors):
            break
        anchors = updated
    anchors = anchors[np.argsort(anchors.prod(axis=1))]
    return anchors, mean_best_iou(wh, anchors)


def letterboxed_wh(annotations: Sequence[Annotation], input_size: Sequence[int]) -> np.ndarray:
    """``(n, 2)`` sizes of every box of ``annotations`` after the letterbox into ``input_size``."""
    sizes = [
        (a.boxes[:, 2:] - a.boxes[:, :2]) * letterbox_ratio(a.height, a.width, input_size)
        for a in annotations
    ]
    return np.concatenate(sizes) if sizes else np.zeros((0, 2))


def dataset_anchors(
    annotations: Sequence[Annotation], input_size: Sequence[int], k: int, *, seed: int = 0
) -> tuple[np.ndarray, float]:
    """:func:`kmeans_anchors` of the dataset's letterboxed box sizes: ``(anchors (k, 2), IoU)``."""
    return kmeans_anchors(letterboxed_wh(annotations, input_size), k, seed=seed)


def preset_anchors(cfg: YoloConfig, count: int, input_size: Sequence[int]) -> np.ndarray:
    """``cfg``'s ``count`` smallest anchors by area, scaled from its input size to ``input_size``.

    Returns:
        ``(count, 2)`` pixels, by area, rounded to 0.01 px.
    """
    if count > len(cfg.anchors):
        raise ValueError(f"the preset has {len(cfg.anchors)} anchors, {count} are needed")
    ratio = input_size[0] / cfg.input_size[0]
    by_area = sorted(cfg.anchors, key=lambda wh: wh[0] * wh[1])[:count]
    return np.array([[round(w * ratio, 2), round(h * ratio, 2)] for w, h in by_area])
