"""What the command-line jobs share: the data flags and loading the data they name."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

DATA_FORMATS = ("digits", "coco", "voc", "yolo")
DEFAULT_OUT = os.path.join("saved_models", "digits_nano")

DIGITS_CACHE = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")),
    "kyolo",
    "digitsdet",
)
"""Where DigitsDet is generated for a command without ``--out`` (``training.anchors``)."""

SPLITS = ("train", "val")


def add_data_arguments(parser: argparse.ArgumentParser, splits: Sequence[str] = SPLITS) -> None:
    """Flags that say where the data of ``splits`` is (``training.train``: train and val,
    ``training.anchors``: train, ``training.evaluate``: val)."""
    parser.add_argument("--data-format", choices=DATA_FORMATS, default="digits")
    for split in splits:
        parser.add_argument(
            f"--{split}",
            help=f"{split} annotations: COCO json file, VOC xml folder or YOLO label folder",
        )
        parser.add_argument(f"--{split}-images", help=f"image folder of --{split}")
    parser.add_argument("--classes", help="text file with one class name per line (voc, yolo)")
    parser.add_argument(
        "--data-dir",
        help="where DigitsDet is generated (digits only); default: OUT/data, or "
        f"{DIGITS_CACHE} for a command without --out",
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


def check_data_paths(
    parser: argparse.ArgumentParser, args: argparse.Namespace, splits: Sequence[str] = SPLITS
) -> None:
    """Exit with a message naming the flag when a data path is missing or of the wrong kind."""
    if args.data_format == "digits":
        return
    flags = [flag for split in splits for flag in (f"--{split}", f"--{split}-images")]
    if not all(getattr(args, flag[2:].replace("-", "_")) for flag in flags):
        needed = f"{', '.join(flags[:-1])} and {flags[-1]}"
        parser.error(f"--data-format {args.data_format} needs {needed}")
    if args.data_format in ("voc", "yolo") and not args.classes:
        parser.error(f"--data-format {args.data_format} needs --classes")
    annotations_are = os.path.isfile if args.data_format == "coco" else os.path.isdir
    checks = [
        check
        for split in splits
        for check in (
            (f"--{split}", getattr(args, split), annotations_are),
            (f"--{split}-images", getattr(args, f"{split}_images"), os.path.isdir),
        )
    ]
    for flag, path, exists in [*checks, ("--classes", args.classes, os.path.isfile)]:
        if path is not None and not exists(path):
            kind = "file" if exists is os.path.isfile else "folder"
            parser.error(f"{flag} {path}: no such {kind}")


def digits_dir(args: argparse.Namespace) -> str:
    """``--data-dir``, else ``OUT/data`` (commands with ``--out``), else :data:`DIGITS_CACHE`."""
    if args.data_dir:
        return args.data_dir
    out = getattr(args, "out", None)
    return os.path.join(out, "data") if out else DIGITS_CACHE


def load_data(args: argparse.Namespace, splits: Sequence[str] = SPLITS) -> tuple[list, ...]:
    """``(annotations of each split..., class names)`` for the chosen format.

    Raises ``ValueError`` naming the flag and its path for a split without images or a bad
    ``--classes`` file, and the readers' ``AnnotationError`` for bad annotations.
    """
    from kyolo import data

    if args.data_format == "digits":
        # Deterministic and fast (seconds): regenerating beats trusting a stale folder.
        paths = data.make_digits(digits_dir(args), n_train=args.digits[0], n_val=args.digits[1])
        names = list(paths.class_names)
        folders = {
            "train": (paths.train_images, paths.train_labels),
            "val": (paths.val_images, paths.val_labels),
        }
        return (
            *(data.read_yolo(*folders[split], len(names)) for split in splits),
            names,
        )
    try:
        names = data.read_class_names(args.classes) if args.classes else None
    except ValueError as err:
        raise ValueError(f"--classes {err}") from None
    loaded = []
    for split in splits:
        annotations, split_names = data.read_annotations(
            args.data_format,
            getattr(args, split),
            getattr(args, f"{split}_images"),
            names,
            args.on_invalid,
        )
        if not annotations:
            raise ValueError(
                f"--{split} {getattr(args, split)} (--{split}-images "
                f"{getattr(args, f'{split}_images')}): no images"
            )
        if names is not None and split_names != names:
            raise ValueError(
                f"--{split} categories {split_names} differ from --{splits[0]}'s {names}"
            )
        names = split_names
        loaded.append(annotations)
    return (*loaded, names)
