"""DigitsDet: a small detection dataset composed from real MNIST digits, generated on demand.

Each canvas holds ``min_digits..max_digits`` handwritten digits from the bundled 5000-digit MNIST
subset (``assets/mnist_5k.csv.gz``, see ``assets/README.md`` for credit and licences), each scaled
so its longer side is ``digit_px`` pixels, tinted, and placed at random on an RGB background made of
a colour gradient plus grey noise. The box of a digit is tight around its ink; the class is the
digit. Output is a YOLO txt dataset read by :func:`kyolo.data.yolo_txt.read_yolo`::

    out_dir/classes.txt                 "0" .. "9", one per line
    out_dir/images/{train,val}/000000.png
    out_dir/labels/{train,val}/000000.txt

The 5000 digits are split once, independently of ``seed``, into disjoint pools (per class, the first
400 to train, the last 100 to val), so no validation digit is ever seen in training.

Digits are not mirror-symmetric (a flipped 2 looks like a 5): train on DigitsDet with
``kyolo.data.pipeline.Augmentation(flip_prob=0.0)``.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import os
import re

import numpy as np
from PIL import Image

ASSET = os.path.join(os.path.dirname(__file__), "assets", "mnist_5k.csv.gz")
CLASS_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))
TRAIN_FRACTION = 0.8
MAX_OVERLAP = 0.2
"""Largest share of either box that a new digit's box may cover of a placed digit's box (or be
covered by). Stricter than IoU < 0.2, which would still let a small digit sit inside a big one."""
_PLACEMENT_TRIES = 30
_INK_THRESHOLD = 0.2
"""Resampled stroke fringe below this opacity is cut, so the box is tight around visible ink."""
_GENERATED = re.compile(r"\d{6}\.(png|txt)")


@dataclasses.dataclass(frozen=True)
class DigitsPaths:
    """Where :func:`make_digits` wrote the dataset (arguments for ``read_yolo``)."""

    root: str
    train_images: str
    train_labels: str
    val_images: str
    val_labels: str
    classes_file: str
    class_names: tuple[str, ...] = CLASS_NAMES


def make_digits(
    out_dir: str | os.PathLike,
    *,
    n_train: int = 1000,
    n_val: int = 200,
    image_size: tuple[int, int] = (128, 128),
    min_digits: int = 1,
    max_digits: int = 4,
    digit_px: tuple[int, int] = (16, 40),
    seed: int = 0,
) -> DigitsPaths:
    """Write DigitsDet to ``out_dir``; same arguments give byte-identical files.

    Args:
        out_dir: created if missing. If it already holds a DigitsDet dataset, its generated files
            (``NNNNNN.png`` / ``NNNNNN.txt``) are replaced; any other non-empty folder is refused.
        n_train, n_val: number of images per split.
        image_size: ``(height, width)`` of every image.
        min_digits, max_digits: digits per image, drawn uniformly. A digit that finds no place
            overlapping less than 20% of any other digit's box (and so IoU < 0.2) in 30 tries is
            left out, so crowded settings may give fewer than ``min_digits``.
        digit_px: ``(low, high)`` size in pixels of a digit's longer side, drawn uniformly.
        seed: seed of everything random; each image has its own stream, so ``n_train`` does
            not change the validation images.

    Returns:
        The paths of the dataset.
    """
    height, width = (int(v) for v in image_size)
    low, high = (int(v) for v in digit_px)
    if n_train < 0 or n_val < 0:
        raise ValueError(f"n_train and n_val must be >= 0, got {n_train}, {n_val}")
    if not 0 <= min_digits <= max_digits:
        raise ValueError(f"need 0 <= min_digits <= max_digits, got {min_digits}, {max_digits}")
    if not 4 <= low <= high <= min(height, width) - 2:
        raise ValueError(
            f"digit_px {digit_px} must satisfy 4 <= low <= high <= min(image_size) - 2 "
            f"(a 1-pixel margin on each side), image_size is {image_size}"
        )
    root = os.path.abspath(os.fspath(out_dir))
    paths = DigitsPaths(
        root=root,
        train_images=os.path.join(root, "images", "train"),
        train_labels=os.path.join(root, "labels", "train"),
        val_images=os.path.join(root, "images", "val"),
        val_labels=os.path.join(root, "labels", "val"),
        classes_file=os.path.join(root, "classes.txt"),
    )
    _prepare(paths)
    with open(paths.classes_file, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(CLASS_NAMES) + "\n")

    crops, labels = _mnist_crops()
    train_pool, val_pool = _split_pools(labels)

    splits = [
        (n_train, train_pool, paths.train_images, paths.train_labels),
        (n_val, val_pool, paths.val_images, paths.val_labels),
    ]
    for split, (count, pool, images_dir, labels_dir) in enumerate(splits):
        for i in range(count):
            # One stream per image: image i is the same whatever n_train / n_val are.
            rng = np.random.default_rng([seed, split, i])
            canvas, boxes, classes = _compose(
                rng, crops, labels, pool, height, width, min_digits, max_digits, low, high
            )
            name = f"{i:06d}"
            Image.fromarray(canvas).save(os.path.join(images_dir, name + ".png"), compress_level=1)
            with open(os.path.join(labels_dir, name + ".txt"), "w", newline="\n") as f:
                f.write(_label_text(boxes, classes, height, width))
    return paths


@functools.lru_cache(maxsize=1)
def _load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """``(5000, 28, 28)`` uint8 digits (white ink on black) and their ``(5000,)`` labels."""
    with gzip.open(ASSET, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1].astype(np.int32)


@functools.lru_cache(maxsize=1)
def _mnist_crops() -> tuple[list[np.ndarray], np.ndarray]:
    """Each digit cut to the bounding box of its nonzero pixels (uint8), and the labels."""
    images, labels = _load_mnist()
    crops = []
    for image in images:
        rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
        crops.append(image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    return crops, labels


def _split_pools(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    train, val = [], []
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        cut = int(round(len(members) * TRAIN_FRACTION))
        train.append(members[:cut])
        val.append(members[cut:])
    return np.concatenate(train), np.concatenate(val)


def _prepare(paths: DigitsPaths) -> None:
    dirs = (paths.train_images, paths.train_labels, paths.val_images, paths.val_labels)
    if os.path.isdir(paths.root) and os.listdir(paths.root):
        if not os.path.isfile(paths.classes_file):
            raise FileExistsError(
                f"{paths.root} is not empty and holds no DigitsDet dataset; refusing to write there"
            )
        for folder in dirs:
            if os.path.isdir(folder):
                for name in os.listdir(folder):
                    if _GENERATED.fullmatch(name):
                        os.remove(os.path.join(folder, name))
    for folder in dirs:
        os.makedirs(folder, exist_ok=True)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """``(h, w, 3)`` float32 in [0, 255]: a two-colour linear gradient plus grey Gaussian noise."""
    start, end = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = _grid(height, width)
    t = xx * np.float32(np.cos(angle)) + yy * np.float32(np.sin(angle))
    t -= t.min()
    t /= max(float(t.max()), 1e-6)
    noise = rng.standard_normal(size=(height, width, 1), dtype=np.float32)
    noise *= np.float32(rng.uniform(2, 20))
    image = start + (end - start) * t[..., None] + noise
    return np.clip(image, 0, 255, out=image)


@functools.lru_cache(maxsize=4)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    return tuple(np.mgrid[0:height, 0:width].astype(np.float32))


def _digit_alpha(crop: np.ndarray, longer_side: int) -> np.ndarray:
    """Resize a digit crop so its longer side is ``longer_side``; cut faint fringe; trim."""
    h, w = crop.shape
    factor = longer_side / max(h, w)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    alpha = np.asarray(Image.fromarray(crop).resize(size, Image.BILINEAR), np.float32) / 255.0
    alpha = np.clip((alpha - _INK_THRESHOLD) / (1.0 - _INK_THRESHOLD), 0.0, 1.0)
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    return alpha[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _compose(
    rng: np.random.Generator,
    crops: list[np.ndarray],
    labels: np.ndarray,
    pool: np.ndarray,
    height: int,
    width: int,
    min_digits: int,
    max_digits: int,
    low: int,
    high: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One canvas: ``(h, w, 3)`` uint8, ``(n, 4)`` int xyxy ink boxes, ``(n,)`` digit labels."""
    canvas = _background(rng, height, width)
    boxes: list[tuple[int, int, int, int]] = []
    classes: list[int] = []
    for _ in range(int(rng.integers(min_digits, max_digits + 1))):
        index = int(pool[rng.integers(len(pool))])
        alpha = _digit_alpha(crops[index], int(rng.integers(low, high + 1)))
        ah, aw = alpha.shape
        for _ in range(_PLACEMENT_TRIES):
            # A 1-pixel margin keeps every box strictly inside the image, so the rounded
            # normalised label coordinates can never land outside it.
            y0 = int(rng.integers(1, height - ah))
            x0 = int(rng.integers(1, width - aw))
            box = (x0, y0, x0 + aw, y0 + ah)
            if all(_overlap(box, other) < MAX_OVERLAP for other in boxes):
                break
        else:
            continue
        region = canvas[y0 : y0 + ah, x0 : x0 + aw]
        mean = region.reshape(-1, 3).mean(axis=0)
        # Ink contrasts with the local background: darker on light ground, lighter on dark.
        direction = -1.0 if mean @ (0.299, 0.587, 0.114) >= 128 else 1.0
        ink = np.clip(mean + direction * rng.uniform(100, 180, size=3), 0, 255)
        region += alpha[..., None] * (ink - region)
        boxes.append(box)
        classes.append(int(labels[index]))
    image = np.round(canvas).astype(np.uint8)
    return image, np.asarray(boxes, np.int64).reshape(-1, 4), np.asarray(classes, np.int64)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over the smaller box's area (an upper bound of IoU)."""
    inter_w = min(a[2], b[2]) - max(a[0], b[0])
    inter_h = min(a[3], b[3]) - max(a[1], b[1])
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return inter_w * inter_h / smaller


def _label_text(boxes: np.ndarray, classes: np.ndarray, height: int, width: int) -> str:
    rows = []
    for (x0, y0, x1, y1), c in zip(boxes, classes, strict=True):
        cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
        w, h = (x1 - x0) / width, (y1 - y0) / height
        rows.append(f"{c} {cx:.8f} {cy:.8f} {w:.8f} {h:.8f}\n")
    return "".join(rows)
