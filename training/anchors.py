"""Fit anchors to a dataset: ``python -m training.anchors --data-format digits``.

Prints the k-means anchors (:mod:`kyolo.anchors`) of the training boxes and their mean best IoU
next to the COCO defaults scaled to the input size. Only the training split is read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from training.cli import add_data_arguments, check_data_paths, load_data
from training.console import cli_main, make_parser


def main(argv: Sequence[str] | None = None) -> None:
    cli_main("training.anchors", command, argv)


def command(argv: list[str]) -> None:
    from kyolo.anchors import kmeans_anchors, letterboxed_wh, mean_best_iou
    from kyolo.config import COCO_ANCHORS

    parser = make_parser("training.anchors", __doc__.splitlines()[0])
    add_data_arguments(parser, splits=("train",))
    parser.add_argument("--num-anchors", type=int, default=6)
    parser.add_argument("--img-size", type=int, nargs="+", default=[128], help="S or H W")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if len(args.img_size) not in (1, 2) or min(args.img_size) < 1:
        parser.error(f"--img-size takes 1 or 2 sizes >= 1, got {args.img_size}")
    if args.num_anchors < 1:
        parser.error(f"--num-anchors must be >= 1, got {args.num_anchors}")
    check_data_paths(parser, args, splits=("train",))
    height, width = (args.img_size * 2)[:2]
    train, _ = load_data(args, splits=("train",))
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
