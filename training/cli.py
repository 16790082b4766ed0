"""What the command-line jobs share: the data flags and loading the data they name."""

from __future__ import annotations

import argparse
import os

DATA_FORMATS = ("digits", "coco", "voc", "yolo")
DEFAULT_OUT = os.path.join("saved_models", "digits_nano")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that say where the data is (``training.train``, ``training.anchors``)."""
    parser.add_argument("--data-format", choices=DATA_FORMATS, default="digits")
    parser.add_argument(
        "--train",
        help="training annotations: COCO json file, VOC xml folder or YOLO label folder",
    )
    parser.add_argument("--train-images", help="image folder of --train")
    parser.add_argument("--val", help="validation annotations, like --train")
    parser.add_argument("--val-images", help="image folder of --val")
    parser.add_argument("--classes", help="text file with one class name per line (voc, yolo)")
    parser.add_argument(
        "--data-dir",
        default=os.path.join("runs", "digitsdet"),
        help="where DigitsDet is generated (digits only)",
    )
    parser.add_argument(
        "--digits",
        type=int,
        nargs=2,
        default=(1000, 200),
        metavar=("TRAIN", "VAL"),
        help="DigitsDet images per split (digits only)",
    )
    parser.add_argument(
        "--on-invalid",
        choices=("raise", "drop", "clip"),
        default="raise",
        help="bad boxes in annotations: stop with an error (default), or drop/clip them with "
        "a logged warning each",
    )


def check_data_paths(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a message naming the flag when a data path is missing or of the wrong kind."""
    if not (args.train and args.val and args.train_images and args.val_images):
        parser.error(
            f"--data-format {args.data_format} needs --train, --train-images, --val and "
            "--val-images"
        )
    if args.data_format in ("voc", "yolo") and not args.classes:
        parser.error(f"--data-format {args.data_format} needs --classes")
    annotations_are = os.path.isfile if args.data_format == "coco" else os.path.isdir
    checks = [
        ("--train", args.train, annotations_are),
        ("--val", args.val, annotations_are),
        ("--train-images", args.train_images, os.path.isdir),
        ("--val-images", args.val_images, os.path.isdir),
        ("--classes", args.classes, os.path.isfile),
    ]
    for flag, path, exists in checks:
        if path is not None and not exists(path):
            kind = "file" if exists is os.path.isfile else "folder"
            parser.error(f"{flag} {path}: no such {kind}")


def load_data(args: argparse.Namespace) -> tuple[list, list, list[str]]:
    """``(train annotations, val annotations, class names)`` for the chosen format."""
    from kyolo import data

    if args.data_format == "digits":
        # Deterministic and fast (seconds): regenerating beats trusting a stale folder.
        paths = data.make_digits(args.data_dir, n_train=args.digits[0], n_val=args.digits[1])
        names = list(paths.class_names)
        return (
            data.read_yolo(paths.train_images, paths.train_labels, len(names)),
            data.read_yolo(paths.val_images, paths.val_labels, len(names)),
            names,
        )
    names = data.read_class_names(args.classes) if args.classes else None
    train, names = data.read_annotations(
        args.data_format, args.train, args.train_images, names, args.on_invalid
    )
    val, val_names = data.read_annotations(
        args.data_format, args.val, args.val_images, names, args.on_invalid
    )
    if val_names != names:
        raise ValueError(f"--val categories {val_names} differ from --train's {names}")
    return train, val, names
