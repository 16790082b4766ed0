"""Draw a SavedModel's detections on images: ``python -m training.predict IMAGE... --out DIR``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from training.cli import DEFAULT_OUT

PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
]


def draw(image: np.ndarray, detections: dict[str, np.ndarray], names: Sequence[str]) -> Image.Image:
    """``image (h, w, 3)`` uint8 with one detection dict (no batch axis) drawn on it."""
    canvas = Image.fromarray(image)
    pen = ImageDraw.Draw(canvas)
    for i in range(int(detections["count"])):
        box = [float(v) for v in detections["boxes"][i]]
        cls = int(detections["classes"][i])
        color = PALETTE[cls % len(PALETTE)]
        pen.rectangle(box, outline=color, width=2)
        label = names[cls] if cls < len(names) else str(cls)
        pen.text((box[0] + 2, box[1] + 1), f"{label} {detections['scores'][i]:.2f}", fill=color)
    return canvas


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Flags, with every path checked: a bad one exits (code 2) with a message naming it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", help="image files (PNG, JPEG, BMP, GIF)")
    parser.add_argument("--model", default=os.path.join(DEFAULT_OUT, "serving"))
    parser.add_argument("--classes", help="class names, one per line (default: ids)")
    parser.add_argument("--score", type=float, default=0.25, help="minimum score to draw")
    parser.add_argument("--out", default=os.path.join(DEFAULT_OUT, "predictions"))
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.model, "saved_model.pb")):
        parser.error(f"--model {args.model}: no SavedModel there (train first)")
    if args.classes and not os.path.isfile(args.classes):
        parser.error(f"--classes {args.classes}: no such file")
    if not 0 <= args.score <= 1:
        parser.error(f"--score must be in [0, 1], got {args.score}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error(f"--out {args.out}: exists and is not a folder")
    targets: dict[str, str] = {}
    for path in args.images:
        if not os.path.isfile(path):
            parser.error(f"image {path}: no such file")
        target = output_path(args.out, path)
        if target in targets:  # nothing is overwritten silently
            parser.error(f"images {targets[target]} and {path} would both be drawn to {target}")
        targets[target] = path
    return args


def output_path(out: str, image: str) -> str:
    return os.path.join(out, os.path.splitext(os.path.basename(image))[0] + ".png")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)

    import tensorflow as tf

    from kyolo.data import read_class_names
    from kyolo.data.pipeline import decode_image

    try:
        names = read_class_names(args.classes) if args.classes else []
    except (OSError, ValueError) as err:
        raise SystemExit(f"--classes {args.classes}: {err}") from None
    try:
        serve = tf.saved_model.load(args.model).signatures["serving_default"]
    except (OSError, KeyError, ValueError) as err:
        raise SystemExit(
            f"--model {args.model}: cannot load a serving SavedModel ({err})"
        ) from None
    os.makedirs(args.out, exist_ok=True)
    for path in args.images:
        try:
            image = decode_image(tf.io.read_file(path))
        except tf.errors.OpError as err:
            raise SystemExit(f"image {path}: cannot be decoded ({err.message})") from None
        found = {k: v.numpy()[0] for k, v in serve(images=image[None]).items()}
        keep = found["scores"][: found["count"]] >= args.score
        found = {k: v[: found["count"]][keep] for k, v in found.items() if k != "count"}
        found["count"] = int(keep.sum())
        target = output_path(args.out, path)
        draw(image.numpy(), found, names).save(target)
        print(f"{path}: {found['count']} boxes -> {target}")


if __name__ == "__main__":
    main()
