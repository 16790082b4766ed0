"""Export a trained model: ``python -m training.export RUN --format saved_model|tflite|onnx``.

``RUN`` is a training run folder (its ``model.keras``) or a ``.keras`` saved with its metadata.
Writes ``RUN/export/saved_model``, ``RUN/export/model_QUANTIZE.tflite`` or
``RUN/export/model.onnx`` unless ``--out`` names the file or folder. int8 TFLite calibrates on
``--calibration`` training images: the run's own (its ``run.yaml``) or ``--calibration-images``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence

from training.console import cli_main, make_parser

FORMATS = ("saved_model", "tflite", "onnx")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = make_parser("training.export", __doc__.splitlines()[0])
    parser.add_argument("run", help="training run folder or .keras file")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument(
        "--quantize",
        choices=("float32", "float16", "int8"),
        default="float32",
        help="tflite only: weights (and, int8, activations) precision",
    )
    parser.add_argument(
        "--calibration", type=int, default=200, metavar="N", help="int8: calibration images"
    )
    parser.add_argument(
        "--calibration-images",
        metavar="FOLDER",
        help="int8: folder of training images (default: the run's training data, from run.yaml)",
    )
    parser.add_argument("--out", help="output file (tflite, onnx) or folder (saved_model)")
    args = parser.parse_args(argv)
    if not os.path.exists(args.run):
        parser.error(f"{args.run}: no such run folder or .keras file")
    if args.quantize != "float32" and args.format != "tflite":
        parser.error(f"--quantize {args.quantize} is for --format tflite only")
    if args.calibration < 1:
        parser.error(f"--calibration must be >= 1, got {args.calibration}")
    if args.calibration_images and not os.path.isdir(args.calibration_images):
        parser.error(f"--calibration-images {args.calibration_images}: no such folder")
    if args.out is None:
        run_folder = args.run if os.path.isdir(args.run) else os.path.dirname(args.run)
        name = {
            "saved_model": "saved_model",
            "tflite": f"model_{args.quantize}.tflite",
            "onnx": "model.onnx",
        }[args.format]
        args.out = os.path.join(run_folder, "export", name)
    return args


def training_images(args: argparse.Namespace) -> list[str]:
    """Calibration image paths: ``--calibration-images``, else the run's training split."""
    from kyolo.data.yolo_txt import IMAGE_EXTENSIONS
    from training import train as train_job
    from training.cli import load_data
    from training.runconfig import RUN_CONFIG

    if args.calibration_images:
        return [
            os.path.join(args.calibration_images, name)
            for name in sorted(os.listdir(args.calibration_images))
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
        ]
    folder = args.run if os.path.isdir(args.run) else os.path.dirname(args.run)
    config = os.path.join(folder, RUN_CONFIG)
    if not os.path.isfile(config):
        raise ValueError(
            f"int8 calibration needs training images: {config} does not exist; "
            "pass --calibration-images FOLDER"
        )
    run_args = train_job.parse_args(["--config", config, "--out", folder])
    train, _, _ = load_data(run_args)
    return [ann.image_path for ann in train]


def main(argv: Sequence[str] | None = None) -> None:
    cli_main("training.export", command, argv)


def command(argv: list[str]) -> None:
    args = parse_args(argv)

    from kyolo.export import EXPORTERS
    from kyolo.export.tflite import calibration_canvases
    from kyolo.saving import load_trained

    started = time.time()
    model, cfg, names = load_trained(args.run)
    options = {}
    if args.format == "tflite":
        options["quantize"] = args.quantize
        if args.quantize == "int8":
            paths = training_images(args)
            options["calibration"] = calibration_canvases(paths, cfg, args.calibration)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    path = EXPORTERS[args.format](model, cfg, args.out, class_names=names, **options)
    print(f"{path}: {args.format} ({args.quantize}) in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
