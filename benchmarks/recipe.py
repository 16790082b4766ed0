"""Training-recipe augmentation: box exactness and tf.data throughput, kyolo vs Keras' layers.

1. Exactness: a white rectangle is moved by each augmentation; its edges are measured to
   sub-pixel precision from the pixels (centre and width of the coverage profile through the
   middle row and column) and compared with the box the augmentation returns. kyolo's
   ``zoom_shift`` and ``mosaic`` vs ``keras.layers.RandomZoom`` / ``RandomTranslation`` /
   ``RandomFlip`` (``bounding_box_format="xyxy"``).
2. Augmentation alone, on in-memory letterboxed DigitsDet canvases: kyolo's ``random_augment``
   per example vs Keras' ``RandomFlip`` + ``RandomZoom`` + ``RandomTranslation`` (+
   ``RandomColorJitter``) on batches of 16, images/s through ``tf.data``.
3. The whole ``make_dataset`` (read, decode, letterbox, augment, pad, batch 16) on DigitsDet with
   mosaic / mixup off and on, images/s.

Run from the repository root::

    .venv/bin/python -m benchmarks.recipe                 # ~3 min on 2 busy cores
    .venv/bin/python -m benchmarks.recipe --images 512 --size 256 --epochs 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable

import numpy as np

from benchmarks.common import machine, print_machine, set_threads

H, W = 128, 128


def coverage_box(image: np.ndarray, background: float) -> np.ndarray:
    """Sub-pixel xyxy of one bright rectangle: centre ± width / 2 of its coverage profiles."""
    cover = np.clip((np.asarray(image).mean(axis=-1) - background) / (1 - background), 0, 1)
    rows, cols = np.flatnonzero(cover.max(axis=1) > 0.5), np.flatnonzero(cover.max(axis=0) > 0.5)
    row, col = cover[(rows[0] + rows[-1]) // 2], cover[:, (cols[0] + cols[-1]) // 2]
    out = []
    for profile in (row, col):
        centre = np.sum((np.arange(len(profile)) + 0.5) * profile) / profile.sum()
        out.append((centre - profile.sum() / 2, centre + profile.sum() / 2))
    (x0, x1), (y0, y1) = out
    return np.array([x0, y0, x1, y1])


def exactness(draws: int) -> list[tuple[str, float, float]]:
    """``(augmentation, mean, max |box - pixels|)`` in pixels over ``draws`` random draws."""
    import keras
    import tensorflow as tf

    from kyolo.data.augment import zoom_shift
    from kyolo.data.mix import mosaic
    from kyolo.geometry import PAD_VALUE

    rng = np.random.default_rng(0)
    rows = []
    box = np.array([40.0, 30, 90, 75], np.float32)

    def rectangle(background: float) -> np.ndarray:
        image = np.full((H, W, 3), background, np.float32)
        x0, y0, x1, y1 = box.astype(int)
        image[y0:y1, x0:x1] = 1.0
        return image

    errors = []
    for _ in range(draws):
        zoom, dy, dx = rng.uniform(0.7, 1.3), rng.uniform(-12, 12), rng.uniform(-12, 12)
        image, boxes, _ = zoom_shift(tf.constant(rectangle(PAD_VALUE)), [box], [0], zoom, dy, dx)
        errors.append(np.abs(coverage_box(image, PAD_VALUE) - boxes.numpy()[0]).max())
    rows.append(("kyolo zoom_shift (zoom 0.7-1.3, shift ±12 px)", *_stats(errors)))
    errors = []
    for _ in range(draws):
        tile = (tf.constant(rectangle(PAD_VALUE)), tf.constant([box]), tf.constant([0]))
        empty = (tf.fill([H, W, 3], PAD_VALUE), tf.zeros([0, 4]), tf.zeros([0], tf.int32))
        # The rectangle's tile is bottom-right, whole: the centre stays above-left of it.
        centre = rng.integers(H // 4, 3 * H // 4 + 1, size=2)
        image, boxes, _ = mosaic([empty, empty, empty, tile], *centre)
        errors.append(np.abs(coverage_box(image, PAD_VALUE) - boxes.numpy()[0]).max())
    rows.append(("kyolo mosaic (tile at half size)", *_stats(errors)))

    data = {
        "images": tf.constant(rectangle(0.0)[None]),
        "bounding_boxes": {"boxes": tf.constant(box[None, None]), "labels": tf.constant([[0]])},
    }
    layers = {
        "keras RandomZoom(0.3)": keras.layers.RandomZoom(
            0.3, 0.3, bounding_box_format="xyxy", fill_mode="constant", seed=1
        ),
        "keras RandomTranslation(0.1)": keras.layers.RandomTranslation(
            0.1, 0.1, bounding_box_format="xyxy", fill_mode="constant", seed=1
        ),
        "keras RandomFlip": keras.layers.RandomFlip("horizontal", bounding_box_format="xyxy"),
    }
    for name, layer in layers.items():
        errors = []
        for _ in range(draws):
            out = layer(data, training=True)
            boxes = np.asarray(out["bounding_boxes"]["boxes"])[0, 0]
            errors.append(np.abs(coverage_box(out["images"][0], 0.0) - boxes).max())
        rows.append((name, *_stats(errors)))
    return rows


def _stats(errors: list[float]) -> tuple[float, float]:
    return float(np.mean(errors)), float(np.max(errors))


def images_per_second(ds, count: int, epochs: int) -> float:
    """Drain ``ds`` once (warm-up), then ``epochs`` times; ``count`` images per epoch."""
    for _ in ds:
        pass
    start = time.perf_counter()
    for _ in range(epochs):
        for _ in ds:
            pass
    return count * epochs / (time.perf_counter() - start)


def augment_only(annotations, cfg, epochs: int) -> list[tuple[str, float]]:
    """kyolo's per-example augmentation vs Keras' batched layers on cached canvases."""
    import keras
    import tensorflow as tf

    from kyolo.data.augment import Augmentation, random_augment
    from kyolo.data.pipeline import make_dataset

    padded = make_dataset(annotations, cfg, batch_size=len(annotations), training=False)
    batch = next(iter(padded))
    images, boxes, classes, counts = (batch[k] for k in ("image", "boxes", "classes", "num_boxes"))
    n = len(annotations)
    seeds = tf.data.Dataset.random(seed=0, rerandomize_each_iteration=True).batch(2)
    examples = tf.data.Dataset.from_tensor_slices((images, boxes, classes, counts))

    def ours(config: Augmentation) -> tf.data.Dataset:
        def one(example, seed):
            image, box, cls, count = example
            return random_augment(image, box[:count], cls[:count], seed, config)[0]

        return (
            tf.data.Dataset.zip(examples, seeds)
            .map(one, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(16)
        )

    def theirs(colour: bool) -> tf.data.Dataset:
        layers = [
            keras.layers.RandomFlip("horizontal", bounding_box_format="xyxy"),
            keras.layers.RandomZoom(0.25, 0.25, bounding_box_format="xyxy", fill_mode="constant"),
            keras.layers.RandomTranslation(
                0.1, 0.1, bounding_box_format="xyxy", fill_mode="constant"
            ),
        ]
        if colour:
            layers.append(
                keras.layers.RandomColorJitter(
                    value_range=(0, 1), brightness_factor=0.4, saturation_factor=0.7,
                    hue_factor=0.015, bounding_box_format="xyxy",
                )
            )  # fmt: skip

        def apply(image, box, cls, count):
            data = {"images": image, "bounding_boxes": {"boxes": box, "labels": cls}}
            for layer in layers:
                data = layer(data, training=True)
            return data["images"]

        return examples.batch(16).map(apply, num_parallel_calls=tf.data.AUTOTUNE)

    geometry = Augmentation(hue=0, saturation=0, value=0)
    cases: dict[str, Callable[[], tf.data.Dataset]] = {
        "kyolo random_augment: flip, zoom, shift": lambda: ours(geometry),
        "keras RandomFlip + RandomZoom + RandomTranslation": lambda: theirs(False),
        "kyolo random_augment: + HSV": lambda: ours(Augmentation()),
        "keras ... + RandomColorJitter": lambda: theirs(True),
    }
    return [(name, images_per_second(build(), n, epochs)) for name, build in cases.items()]


def pipeline(annotations, cfg, epochs: int) -> list[tuple[str, float]]:
    """Images/s of the whole ``make_dataset`` with and without mosaic / mixup."""
    from kyolo.data.augment import Augmentation
    from kyolo.data.pipeline import make_dataset

    cases = {
        "letterbox only (augment=False)": False,
        "augment (flip 0, zoom, shift, HSV)": Augmentation(flip_prob=0),
        "+ mosaic 0.5": Augmentation(flip_prob=0, mosaic_prob=0.5),
        "+ mosaic 1.0": Augmentation(flip_prob=0, mosaic_prob=1.0),
        "+ mixup 0.5": Augmentation(flip_prob=0, mixup_prob=0.5),
        "+ mosaic 1.0 + mixup 0.5": Augmentation(flip_prob=0, mosaic_prob=1.0, mixup_prob=0.5),
        "+ mosaic 1.0 + mixup 1.0": Augmentation(flip_prob=0, mosaic_prob=1.0, mixup_prob=1.0),
    }
    n = len(annotations)
    return [
        (
            name,
            images_per_second(
                make_dataset(annotations, cfg, batch_size=16, training=True, augment=augment),
                n,
                epochs,
            ),
        )
        for name, augment in cases.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="DigitsDet training images")
    parser.add_argument("--size", type=int, default=128, help="input size (square)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per case")
    parser.add_argument("--draws", type=int, default=20, help="random draws per exactness row")
    parser.add_argument("--threads", type=int, default=0, help="TF threads, 0: TF's default")
    args = parser.parse_args()
    if args.threads:
        set_threads(args.threads)
    from kyolo.config import YoloConfig
    from kyolo.data import make_digits, read_yolo

    print_machine(machine(), args.threads)
    print("\n| augmentation | mean abs(box - pixels) px | max px |\n|---|---|---|")
    for name, mean, worst in exactness(args.draws):
        print(f"| {name} | {mean:.3f} | {worst:.3f} |")
    with tempfile.TemporaryDirectory() as root:
        paths = make_digits(os.path.join(root, "digits"), n_train=args.images, n_val=1)
        annotations = read_yolo(paths.train_images, paths.train_labels, 10)
        cfg = YoloConfig(num_classes=10, input_size=(args.size, args.size))
        print(f"\n{args.images} DigitsDet images at {args.size}x{args.size}, batches of 16")
        print("\n| augmentation only (cached canvases) | images/s |\n|---|---|")
        for name, rate in augment_only(annotations, cfg, args.epochs):
            print(f"| {name} | {rate:.0f} |")
        print("\n| make_dataset (read, decode, letterbox, augment) | images/s |\n|---|---|")
        for name, rate in pipeline(annotations, cfg, args.epochs):
            print(f"| {name} | {rate:.0f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
