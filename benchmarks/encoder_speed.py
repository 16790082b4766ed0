"""Target-encoder throughput in ``tf.data``, and how the loss grows with boxes and input size.

1. kyolo's per-image encoder (``encode_targets``, dense and sparse ``target_layout``) for the
   YOLOv3 (best anchor) and YOLOv5 (ratio) presets, mapped over a dataset of per-image box
   arrays (``(n, 4)`` boxes and ``(n,)`` classes, n = 10 and 100), ``num_parallel_calls=1``
   (one core) and ``AUTOTUNE``; the dataset is drained with ``Dataset.reduce`` so no Python runs
   per element. Compared with one forward + backward step of the v3 loss (kyolo, XLA) on a
   batch.
2. Loss time (forward + backward) against boxes per image at a fixed input size.
3. Loss time against input size at a fixed box count.

Run from the repository root::

    .venv/bin/python -m benchmarks.encoder_speed                  # ~5 min
    .venv/bin/python -m benchmarks.encoder_speed --parts 1 --encoder /tmp/old_encoder.py
    .venv/bin/python -m benchmarks.encoder_speed --box-counts 1 10 30 100 300 --repeats 7 \\
        --sizes 320 416 512 608 640 --candidate /tmp/scratch/v3_fast.py

``--encoder FILE`` adds the encoder ``encode(boxes, classes, cfg)`` of FILE (e.g. an older
version of kyolo's, for a before/after comparison in the same pool), given each preset's dense
configuration.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from typing import Any

import numpy as np

from benchmarks import common
from benchmarks import loss_speed as ls

ENCODER_PRESETS = ("yolov3", "yolov5")
"""Part 1's presets: keras-yolo3's best anchor (at ``--size``) and YOLOv5's ratio (at 640)."""


def encoder_configs(args: argparse.Namespace) -> dict[str, Any]:
    """Part 1's configurations by label, e.g. ``"yolov3 416"``."""
    from kyolo.config import YOLOV3, YOLOV5

    presets = {"yolov3": YOLOV3.replace(input_size=(args.size, args.size)), "yolov5": YOLOV5}
    return {f"{name} {presets[name].input_size[0]}": presets[name] for name in ENCODER_PRESETS}


def encoder_throughput(args: argparse.Namespace) -> list[list[str]]:
    """Rows ``preset, encoder, boxes, parallel calls, images/s, images/s per core, ms per batch``.

    Encoders: kyolo's per image (``encode_targets`` mapped over images) and per batch
    (``encode_batch`` mapped over ``--batch`` images, after ``Dataset.batch``), with the dense and
    the sparse ``target_layout``, and the ``--encoder`` file's (given the dense configuration) if
    any. Every preset, encoder and parallelism setting of one box count is drained in one
    interleaved pool.
    """
    import tensorflow as tf

    from kyolo.encode import encode_batch

    encoders, per_batch = {}, set()
    candidate = load_function(args.encoder, "encode") if args.encoder else None
    for label, cfg in encoder_configs(args).items():
        for layout in ("dense", "sparse"):
            layout_cfg = cfg.replace(target_layout=layout)
            encoders[(label, f"kyolo {layout}")] = common.image_encoder(layout_cfg)
            key = (label, f"kyolo {layout}, per batch")
            encoders[key] = lambda b, c, cfg=layout_cfg: encode_batch(b, c, cfg)
            per_batch.add(key)
        if candidate:
            name = f"{os.path.basename(args.encoder)} (dense)"
            encoders[(label, name)] = lambda boxes, classes, cfg=cfg: candidate(boxes, classes, cfg)
    rows = []
    for count in args.encoder_boxes:
        rng = np.random.default_rng(count)
        pairs = [common.random_boxes(rng, count, count, 80) for _ in range(args.images)]
        boxes = np.stack([p[0] for p in pairs])
        classes = np.stack([p[1] for p in pairs])
        source = tf.data.Dataset.from_tensor_slices((boxes, classes))
        drains = {}
        for key, encode in encoders.items():
            for calls in (1, tf.data.AUTOTUNE):
                if key in per_batch:
                    ds = source.batch(args.batch, drop_remainder=True)
                    ds = ds.map(encode, num_parallel_calls=calls)
                else:
                    ds = source.map(encode, num_parallel_calls=calls)
                drains[(*key, calls)] = lambda ds=ds: ds.reduce(np.int64(0), lambda n, _: n + 1)
        times = common.interleaved(drains, 1, args.encoder_repeats)
        for (label, name, calls), t in times.items():
            # Per batch, the last partial batch is dropped (a static batch size).
            done = args.images // args.batch * args.batch if (label, name) in per_batch else None
            per_second = (done or args.images) / (common.median_ms(t) / 1e3)
            cores = 1 if calls == 1 else os.cpu_count()
            rows.append(
                [
                    label,
                    name,
                    str(count),
                    "1" if calls == 1 else f"AUTOTUNE ({cores} cores)",
                    f"{per_second:,.0f}",
                    f"{per_second / cores:,.0f}",
                    f"{1e3 * args.batch / per_second:.1f}",
                    common.spread(t),
                ]
            )
    return rows


def load_function(path: str, name: str):
    spec = importlib.util.spec_from_file_location("encoder_candidate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def growth(xs: list[float], ys: list[float]) -> str:
    """Least-squares exponent ``p`` of ``y ∝ x^p`` over the points."""
    lx, ly = np.log(xs), np.log(ys)
    return f"{np.polyfit(lx, ly, 1)[0]:.2f}"


def sweep(
    args: argparse.Namespace, points: list[int], make_case, label: str, x_of
) -> tuple[list[list[str]], list[tuple[str, str]]]:
    """Time kyolo (XLA), the naive port (graph) and a candidate (XLA) over ``points``.

    All points and implementations are timed in one interleaved pool, so drift on a shared
    machine cannot bend the growth curve.
    """
    import tensorflow as tf

    keys = [("kyolo", "xla"), (ls.NAIVE, "graph")]
    if args.candidate:
        keys.insert(1, ("candidate", "xla"))
    candidates = {}
    for point in points:
        case = make_case(point)
        outputs = [tf.constant(a) for a in case.outputs]
        y_true = [tf.constant(a) for a in case.y_true]
        for name, mode in keys:
            fn = ls.compiled(case.losses[name], mode)
            candidates[(point, name, mode)] = lambda fn=fn, o=outputs, y=y_true: fn(o, y)
    times = common.interleaved(candidates, args.warmup, args.repeats)
    medians = {key: common.median_ms(t) for key, t in times.items()}
    rows = [[label.format(p)] + [f"{medians[(p, *key)]:.1f}" for key in keys] for p in points]
    xs = [x_of(p) for p in points]
    exponents = [growth(xs, [medians[(p, *key)] for p in points]) for key in keys]
    rows.append(["growth exponent p (t ∝ x^p)", *exponents])
    return rows, keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=416, help="v3 input size of parts 1 and 2")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--images", type=int, default=1000, help="images per encoder pass")
    parser.add_argument("--encoder-boxes", nargs="+", type=int, default=[10, 100])
    parser.add_argument("--encoder-repeats", type=int, default=5)
    parser.add_argument("--box-counts", nargs="+", type=int, default=[1, 10, 100, 300])
    parser.add_argument("--sizes", nargs="+", type=int, default=[320, 416, 640])
    parser.add_argument("--boxes", type=int, default=10, help="boxes per image of part 3")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--candidate", help="file defining yolo_loss(outputs, y_true, cfg)")
    parser.add_argument("--encoder", help="file defining encode(boxes, classes, cfg) (part 1)")
    parser.add_argument("--parts", nargs="+", type=int, default=[1, 2, 3], choices=[1, 2, 3])
    args = parser.parse_args()
    common.set_threads(args.threads)
    common.print_machine(common.machine(), args.threads)

    if 1 in args.parts:
        encoders(args)
    if 2 in args.parts:
        by_boxes(args)
    if 3 in args.parts:
        by_size(args)


def encoders(args: argparse.Namespace) -> None:
    sizes = ", ".join(encoder_configs(args))
    print(f"\n### 1. target encoders in tf.data ({sizes}; {args.images} images, 80 classes)\n")
    rows = encoder_throughput(args)
    headers = ["preset", "encoder", "boxes/image", "num_parallel_calls", "images/s"]
    headers += ["images/s/core", f"ms per batch of {args.batch}", "IQR"]
    print(common.table(headers, rows))
    case = ls.v3_case(args.size, args.batch, 10, args.candidate)
    times, _ = ls.measure(case, ["xla"], args.warmup, args.repeats)
    for (name, _), t in times.items():
        step = common.median_ms(t)
        print(f"\nloss step ({name}, XLA, forward + backward, batch {args.batch}): {step:.1f} ms")
        for row in rows:
            if row[0].startswith("yolov3") and row[3] == "1":
                share = float(row[6]) / step
                print(
                    f"  encoding the batch on one core ({row[1]}, {row[2]} boxes/image): "
                    f"{share:.2f}x the step"
                )


def by_boxes(args: argparse.Namespace) -> None:
    def make(count: int) -> ls.Case:
        return ls.v3_case(args.size, args.batch, count, args.candidate, max(100, count))

    print(f"\n### 2. loss vs boxes per image ({args.size}x{args.size}, batch {args.batch}, ms)\n")
    print("max_boxes = max(100, boxes): the fixed box list kyolo's ignore mask compares against")
    rows, keys = sweep(args, args.box_counts, make, "{} boxes", float)
    headers = ["boxes/image"] + [f"{n} {m}" for n, m in keys]
    print(common.table(headers, rows))


def by_size(args: argparse.Namespace) -> None:
    def make(size: int) -> ls.Case:
        return ls.v3_case(size, args.batch, args.boxes, args.candidate)

    print(f"\n### 3. loss vs input size (batch {args.batch}, {args.boxes} boxes/image, ms)\n")
    rows, keys = sweep(args, args.sizes, make, "{0}x{0}", lambda s: float(s * s))
    rows[-1][0] = "growth exponent p (t ∝ pixels^p)"
    headers = ["input"] + [f"{n} {m}" for n, m in keys]
    print(common.table(headers, rows))
    print("(prediction slots grow as pixels: p = 1 is linear in the slot count)")


if __name__ == "__main__":
    main()
