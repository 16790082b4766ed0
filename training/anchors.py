"""Fit anchors to a dataset: ``python -m training.anchors --data-format digits``.

Prints the k-means anchors (:mod:`kyolo.anchors`) and their mean best IoU next to the COCO
defaults scaled to the input size.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from training.cli import add_data_arguments, load_data


def main(argv: Sequence[str] | None = None) -> None:
    from kyolo.anchors import kmeans_anchors, letterboxed_wh, mean_best_iou
    from kyolo.config import COCO_ANCHORS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--num-anchors", type=int, default=6)
    parser.add_argument("--img-size", type=int, nargs="+", default=[128])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    height, width = (args.img_size * 2)[:2]
    train, _, _ = load_data(args)
    wh = letterboxed_wh(train, (height, width))
    anchors, iou = kmeans_anchors(wh, args.num_anchors, seed=args.seed)
    coco = np.array(COCO_ANCHORS) * min(height, width) / 416
    print(f"{len(wh)} boxes, input {height}x{width}")
    print("k-means anchors:", " ".join(f"{w:.0f},{h:.0f}" for w, h in anchors))
    print(
        f"mean best IoU: k-means {iou:.3f}   COCO anchors scaled to the input "
        f"{mean_best_iou(wh, coco):.3f}"
    )


if __name__ == "__main__":
    main()
