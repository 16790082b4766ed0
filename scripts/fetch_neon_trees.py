"""Fetch the pinned deepforest wheel from PyPI and write the NeonTrees COCO dataset.

    python scripts/fetch_neon_trees.py [--out runs/neon_trees] [--cache runs/cache]
        [--pretrain-out runs/neon_pretrain]

Only the wheel is downloaded (``pip download --no-deps``), checked against its SHA-256 and read as
a zip: deepforest and its dependencies are not installed. ``--pretrain-out`` also writes
NeonPretrain (two other NEON sites, from an older pinned wheel; ``kyolo.data.neon_pretrain``) and
stops with an error if any of its tiles is pixel-identical to a NeonTrees tile. See
``docs/real-data.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kyolo.data.coco import read_coco  # noqa: E402
from kyolo.data.neon_pretrain import (  # noqa: E402
    PRETRAIN_SCENES,
    PRETRAIN_VERSION,
    PRETRAIN_WHEEL,
    PRETRAIN_WHEEL_SHA256,
    make_neon_pretrain,
    shared_images,
)
from kyolo.data.neon_trees import (  # noqa: E402
    PACKAGE,
    VERSION,
    WHEEL,
    WHEEL_SHA256,
    NeonTreesPaths,
    extract_scenes,
    make_neon_trees,
)


def fetch_wheel(cache: str, version: str, wheel: str, sha256: str) -> str:
    """``deepforest==version``'s wheel in ``cache``, downloaded when missing; hash-checked."""
    path = os.path.join(cache, wheel)
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
                f"{PACKAGE}=={version}",
            ],
            check=True,
        )
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != sha256:
        sys.exit(f"{path}: sha256 {digest.hexdigest()}, expected {sha256}")
    return path


def report(paths: NeonTreesPaths) -> None:
    """Print each split's image and box counts."""
    for split, json_path, images in (
        ("train", paths.train_json, paths.train_images),
        ("val", paths.val_json, paths.val_images),
    ):
        annotations, _ = read_coco(json_path, images)
        boxes = sum(len(a.boxes) for a in annotations)
        print(f"{split}: {len(annotations)} images, {boxes} boxes -> {json_path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/neon_trees")
    parser.add_argument("--cache", default="runs/cache", help="where the wheel is downloaded")
    parser.add_argument("--tile", type=int, default=256, help="tile side in pixels")
    parser.add_argument("--min-visible", type=float, default=0.5)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pretrain-out", help="also write NeonPretrain (other NEON sites) to this folder"
    )
    args = parser.parse_args(argv)

    wheel = fetch_wheel(args.cache, VERSION, WHEEL, WHEEL_SHA256)
    source = extract_scenes(wheel, os.path.join(args.cache, f"{PACKAGE}-{VERSION}-scenes"))
    paths = make_neon_trees(
        source,
        args.out,
        tile=args.tile,
        min_visible=args.min_visible,
        val_fraction=args.val_fraction,
        seed=args.seed,
    )
    report(paths)
    print(
        "train: python -m training.train --data-format coco "
        f"--train {paths.train_json} --train-images {paths.train_images} "
        f"--val {paths.val_json} --val-images {paths.val_images}"
    )
    if args.pretrain_out:
        write_pretrain(args, paths)


def write_pretrain(args: argparse.Namespace, neon_trees: NeonTreesPaths) -> None:
    """Write NeonPretrain and refuse it when a tile is pixel-identical to a NeonTrees tile."""
    wheel = fetch_wheel(args.cache, PRETRAIN_VERSION, PRETRAIN_WHEEL, PRETRAIN_WHEEL_SHA256)
    scenes_dir = os.path.join(args.cache, f"{PACKAGE}-{PRETRAIN_VERSION}-pretrain-scenes")
    source = extract_scenes(wheel, scenes_dir, PRETRAIN_SCENES)
    paths = make_neon_pretrain(
        source, args.pretrain_out, tile=args.tile, min_visible=args.min_visible
    )
    shared = shared_images([paths.train_images], [neon_trees.train_images, neon_trees.val_images])
    if shared:
        sys.exit(f"NeonPretrain shares images with NeonTrees: {shared}")
    print("NeonPretrain (no tile pixel-identical to a NeonTrees tile):")
    report(paths)


if __name__ == "__main__":
    main()
