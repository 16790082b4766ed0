"""COCO evaluation of any exported model on a dataset: mAP table, PR curves, JSON.

``python -m training.evaluate --model RUN|.keras|SAVEDMODEL|.tflite|.onnx --data-format ...
--val ... --val-images ...`` prints mAP50, mAP50-95, mAP75, AR1/10/100 and the AP of each class
(pycocotools, boxes in original image pixels) and writes ``evaluation.json`` and
``pr_curve.png`` to ``--out`` (default: beside the model, ``eval-NAME``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence

from training.cli import add_data_arguments, check_data_paths, load_data
from training.console import cli_main, make_parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from kyolo.postprocess import DEFAULT_NMS

    parser = make_parser("training.evaluate", __doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        required=True,
        help="training run folder, .keras, SavedModel folder, .tflite or .onnx",
    )
    add_data_arguments(parser, splits=("val",))
    parser.add_argument("--score-threshold", type=float, default=DEFAULT_NMS["score_threshold"])
    parser.add_argument("--iou-threshold", type=float, default=DEFAULT_NMS["iou_threshold"])
    parser.add_argument("--out", help="output folder (default: MODEL_FOLDER/eval-MODEL_NAME)")
    args = parser.parse_args(argv)
    if not os.path.exists(args.model):
        parser.error(f"--model {args.model}: no such file or folder")
    check_data_paths(parser, args, splits=("val",))
    if args.out is None:
        model = os.path.normpath(args.model)
        args.out = os.path.join(os.path.dirname(model), f"eval-{os.path.basename(model)}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error(f"--out {args.out}: exists and is not a folder")
    return args


def table(report: dict, class_names: Sequence[str]) -> str:
    """The report as text: the summary line, then one row per class."""
    summary = "  ".join(
        f"{key} {report[key]:.3f}" for key in ("mAP50", "mAP50_95", "mAP75", "AR1", "AR10", "AR100")
    )
    width = max(8, *(len(name) for name in class_names))
    rows = [summary, f"{'class':<{width}}  instances   AP50  AP50-95"]
    for name in class_names:
        row = report["per_class"][name]
        aps = (
            "     -        -"
            if row["AP50"] is None
            else f"{row['AP50']:6.3f}   {row['AP50_95']:6.3f}"
        )
        rows.append(f"{name:<{width}}  {row['instances']:9d}  {aps}")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> None:
    cli_main("training.evaluate", command, argv)


def command(argv: list[str]) -> None:
    args = parse_args(argv)

    from kyolo.evaluate import coco_report, detect_annotations, plot_precision_recall
    from kyolo.export.runtime import load_detector

    started = time.time()
    detector = load_detector(args.model)
    val, names = load_data(args, splits=("val",))
    if len(names) != len(detector.class_names):
        raise ValueError(
            f"the data has {len(names)} classes, the model {len(detector.class_names)}"
        )
    found = detect_annotations(
        detector, val, score_threshold=args.score_threshold, iou_threshold=args.iou_threshold
    )
    report = coco_report(*found, detector.class_names)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "evaluation.json"), "w") as f:
        json.dump({"model": args.model, "format": detector.format, "images": len(val), **report}, f)
    plot_precision_recall(report, os.path.join(args.out, "pr_curve.png"), title=args.model)
    print(f"{args.model} ({detector.format}) on {len(val)} images, {time.time() - started:.0f} s")
    print(table(report, detector.class_names))
    print(f"evaluation.json and pr_curve.png in {args.out}")


if __name__ == "__main__":
    main()
