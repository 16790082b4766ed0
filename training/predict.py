"""Run a trained detector on images, folders, globs and videos; draw and save what it finds.

``python -m training.predict SOURCE... [--model RUN|SAVEDMODEL|TFLITE|ONNX] [--out DIR]``. Per
image ``NAME``: ``OUT/NAME.png`` (boxes drawn), ``OUT/NAME.json`` (class, name, score, xyxy box in
pixels) and ``OUT/labels/NAME.txt`` (YOLO txt); per video: ``OUT/NAME.mp4``, ``OUT/NAME.json``
(per frame) and ``OUT/labels/NAME_FRAME.txt``. An image that cannot be read is named and skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from training.cli import DEFAULT_OUT
from training.console import cli_main, make_parser

if TYPE_CHECKING:
    from kyolo.export.runtime import Detector

LOG = logging.getLogger("kyolo.predict")

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
    """``image (h, w, 3)`` uint8 with a :class:`~kyolo.export.runtime.Detector` result drawn."""
    canvas = Image.fromarray(image)
    pen = ImageDraw.Draw(canvas)
    for box, score, cls in zip(
        detections["boxes"], detections["scores"], detections["classes"], strict=True
    ):
        color = PALETTE[int(cls) % len(PALETTE)]
        box = [float(v) for v in box]
        pen.rectangle(box, outline=color, width=2)
        pen.text((box[0] + 2, box[1] + 1), f"{names[int(cls)]} {score:.2f}", fill=color)
    return canvas


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Flags, checked: a bad one exits (code 2) with a message naming it."""
    from kyolo.media import expand_sources, is_video

    parser = make_parser("training.predict", __doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", help="image or video files, folders, glob patterns")
    parser.add_argument(
        "--model",
        default=DEFAULT_OUT,
        help="training run folder, .keras, SavedModel folder, .tflite or .onnx",
    )
    parser.add_argument("--score-threshold", type=float, default=0.25, help="minimum score kept")
    parser.add_argument("--iou-threshold", type=float, default=0.45, help="NMS IoU threshold")
    parser.add_argument("--out", help="output folder (default: MODEL_FOLDER/predictions)")
    args = parser.parse_args(argv)
    if not os.path.exists(args.model):
        parser.error(f"--model {args.model}: no such file or folder (train first)")
    for flag in ("score_threshold", "iou_threshold"):
        if not 0 <= getattr(args, flag) <= 1:
            parser.error(f"--{flag.replace('_', '-')} must be in [0, 1], got {getattr(args, flag)}")
    if args.out is None:
        folder = args.model if os.path.isdir(args.model) else os.path.dirname(args.model)
        args.out = os.path.join(folder, "predictions")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error(f"--out {args.out}: exists and is not a folder")
    args.media, problems = expand_sources(args.sources)
    if problems:
        parser.error("; ".join(problems))
    targets: dict[str, str] = {}
    for path in args.media:
        target = output_stem(args.out, path) + (".mp4" if is_video(path) else ".png")
        if target in targets:  # nothing is overwritten silently
            parser.error(f"{targets[target]} and {path} would both be written to {target}")
        targets[target] = path
    return args


def output_stem(out: str, path: str) -> str:
    return os.path.join(out, os.path.splitext(os.path.basename(path))[0])


def save_detections(out: str, name: str, image: np.ndarray, found: dict, names: list[str]) -> dict:
    """Write ``out/labels/name.txt`` and return the JSON record of one image or frame."""
    from kyolo.data.yolo_txt import format_yolo
    from kyolo.export.runtime import detection_records

    height, width = image.shape[:2]
    with open(os.path.join(out, "labels", f"{name}.txt"), "w") as f:
        f.write(format_yolo(found["boxes"], found["classes"], width, height))
    return {"width": width, "height": height, "detections": detection_records(found, names)}


def predict_image(detector: Detector, path: str, args: argparse.Namespace) -> str:
    """Detect, draw and save one image; returns the line to print."""
    import tensorflow as tf

    from kyolo.data.pipeline import decode_image

    image = decode_image(tf.io.read_file(path)).numpy()
    found = detector(image, args.score_threshold, args.iou_threshold)
    stem = output_stem(args.out, path)
    draw(image, found, detector.class_names).save(f"{stem}.png")
    record = save_detections(args.out, os.path.basename(stem), image, found, detector.class_names)
    with open(f"{stem}.json", "w") as f:
        json.dump({"image": path, **record}, f, indent=1)
    return f"{path}: {len(found['scores'])} boxes -> {stem}.png"


def predict_video(detector: Detector, path: str, args: argparse.Namespace) -> str:
    """Detect on every frame; write the drawn video, JSON and labels; returns the line to print."""
    from kyolo.media import VideoWriter, video_frames

    fps, frames = video_frames(path)
    stem = output_stem(args.out, path)
    name = os.path.basename(stem)
    records, boxes = [], 0
    with VideoWriter(f"{stem}.mp4", fps) as writer:
        for index, frame in enumerate(frames):
            found = detector(frame, args.score_threshold, args.iou_threshold)
            writer.write(np.asarray(draw(frame, found, detector.class_names)))
            record = save_detections(
                args.out, f"{name}_{index:06d}", frame, found, detector.class_names
            )
            records.append({"frame": index, **record})
            boxes += len(found["scores"])
    with open(f"{stem}.json", "w") as f:
        json.dump({"video": path, "fps": fps, "frames": records}, f, indent=1)
    return f"{path}: {len(records)} frames, {boxes} boxes -> {stem}.mp4"


def main(argv: Sequence[str] | None = None) -> None:
    cli_main("training.predict", command, argv)


def command(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)

    import tensorflow as tf

    from kyolo.export.runtime import load_detector
    from kyolo.media import is_video

    try:
        detector = load_detector(args.model)
    except (OSError, ValueError, ImportError) as err:
        raise ValueError(f"--model {args.model}: {err}") from err
    os.makedirs(os.path.join(args.out, "labels"), exist_ok=True)
    skipped = []
    for path in args.media:
        try:
            run = predict_video if is_video(path) else predict_image
            print(run(detector, path, args))
        except tf.errors.OpError as err:
            LOG.warning("%s: cannot be decoded (%s), skipped", path, err.message)
            skipped.append(path)
        except (OSError, ValueError) as err:
            LOG.warning("%s: %s, skipped", path, err)
            skipped.append(path)
        except ImportError as err:  # a video without its optional reader: no use going on
            raise ImportError(f"{path}: {err}") from err
    done = len(args.media) - len(skipped)
    print(f"{done} of {len(args.media)} inputs done, {len(skipped)} skipped; results in {args.out}")


if __name__ == "__main__":
    main()
