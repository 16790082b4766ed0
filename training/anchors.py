"""Anchor sizes by k-means on box sizes with ``1 − IoU`` as the distance (YOLOv2, sec. 2).

``python -m training.anchors --data-format digits`` prints the anchors and their mean best IoU
next to the COCO defaults scaled to the input size.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from kyolo.config import COCO_ANCHORS


def wh_iou(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """``(n, 2)`` sizes × ``(k, 2)`` anchors → ``(n, k)`` IoU with both centred together."""
    inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(
        wh[:, None, 1], anchors[None, :, 1]
    )
    union = wh[:, None, 0] * wh[:, None, 1] + anchors[None, :, 0] * anchors[None, :, 1] - inter
    return inter / union


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
    return anchors, float(wh_iou(wh, anchors).max(axis=1).mean())


def mean_best_iou(wh: np.ndarray, anchors: np.ndarray) -> float:
    return float(wh_iou(np.asarray(wh, np.float64), np.asarray(anchors, np.float64)).max(1).mean())


def main(argv: Sequence[str] | None = None) -> None:
    from training.train import add_data_arguments, load_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--num-anchors", type=int, default=6)
    parser.add_argument("--img-size", type=int, nargs="+", default=[128])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    height, width = (args.img_size * 2)[:2]
    train, _, _ = load_data(args)
    wh = np.concatenate([letterboxed_wh(a, height, width) for a in train])
    anchors, iou = kmeans_anchors(wh, args.num_anchors, seed=args.seed)
    coco = np.array(COCO_ANCHORS) * min(height, width) / 416
    print(f"{len(wh)} boxes, input {height}x{width}")
    print("k-means anchors:", " ".join(f"{w:.0f},{h:.0f}" for w, h in anchors))
    print(
        f"mean best IoU: k-means {iou:.3f}   COCO anchors scaled to the input "
        f"{mean_best_iou(wh, coco):.3f}"
    )


def letterboxed_wh(annotation, height: int, width: int) -> np.ndarray:
    """Box sizes of one annotation after the letterbox into ``(height, width)``, in pixels."""
    scale = min(height / annotation.height, width / annotation.width)
    return (annotation.boxes[:, 2:] - annotation.boxes[:, :2]) * scale


if __name__ == "__main__":
    main()
