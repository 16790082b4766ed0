"""The training job's ``tf.data`` pipeline alone, in images/s on 1 and 2 cores, against the step.

The pipeline is ``kyolo.data.pipeline.make_dataset`` as ``training/train.py`` builds it for
DigitsDet (1,000 training images of 128x128, generated under ``--data-dir`` if missing): read,
decode, letterbox to the model's input, augmentation, the job's target encoder
(:func:`kyolo.encode.target_encoder`, the YOLOv5 preset with k-means anchors), batch 16. Variants
(``--variants``): ``letterbox`` (no augmentation), ``augment`` (the job's zoom/shift and HSV, no
flips for digits), ``mosaic`` (every example a mosaic of 4 images) and ``mosaic+mixup`` (every
example a mosaic mixed with another mosaic: 8 images read per example, the worst case of
``--mosaic 1 --mixup 1``), each without and with ``make_dataset(cache=True)`` (canvases decoded
and letterboxed once, up front; only where they take at most ``--cache-limit-mb``).

Each core count runs in its own process pinned to that many cores (``sched_setaffinity``) with
TensorFlow's and ``tf.data``'s thread pools of that size (``tf.config.threading``,
``options.threading.private_threadpool_size``). In it, the pipeline variants and the training
step of the model it feeds (``train_on_batch`` on one of its batches, graph mode, float32, the
job's compile: :func:`benchmarks.train_speed.kyolo_candidates`) are timed interleaved, medians
reported. A pipeline call iterates a fresh iterator over ``--batches`` batches, so its start-up
and the filling of its buffers are counted, and no prefetching happens while the step runs.

Run from the repository root::

    .venv/bin/python -m benchmarks.input_pipeline                      # ~10 min on 2 busy cores
    .venv/bin/python -m benchmarks.input_pipeline --cases nano:128 --cores 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from benchmarks import common

VARIANTS = {
    "letterbox": None,
    "augment": {},
    "mosaic": {"mosaic_prob": 1.0},
    "mosaic+mixup": {"mosaic_prob": 1.0, "mixup_prob": 1.0},
}
"""Name → ``Augmentation`` fields over the job's digits defaults (None: no augmentation)."""
TARGET = 3.0
"""The issue's target: the pipeline at least 3x the step rate of the model it feeds."""


def case_config(model: str, size: int, train: list, seed: int) -> Any:
    """The training job's config: YOLOv5's loss on ``model``'s strides, k-means anchors."""
    from kyolo.anchors import dataset_anchors
    from kyolo.config import YOLOV5
    from kyolo.models import STRIDES

    strides = STRIDES[model]
    count = YOLOV5.anchors_per_scale * len(strides)
    anchors, _ = dataset_anchors(train, (size, size), count, seed=seed)
    return YOLOV5.with_geometry(
        strides=strides, input_size=(size, size), num_classes=10, anchors=anchors
    )


def pipeline(train: list, cfg: Any, variant: str, cache: bool, args: argparse.Namespace) -> Any:
    """``make_dataset`` of the job for ``variant``, on this process's ``--cores``."""
    import dataclasses

    import tensorflow as tf

    from kyolo.data.augment import Augmentation
    from kyolo.data.pipeline import make_dataset
    from kyolo.encode import target_encoder

    fields = VARIANTS[variant]
    augment = False
    if fields is not None:  # the job's DigitsDet augmentation: no flips (training/train.py)
        augment = dataclasses.replace(Augmentation(flip_prob=0.0), **fields)
    ds = make_dataset(
        train,
        cfg,
        batch_size=args.batch,
        training=True,
        seed=args.seed,
        augment=augment,
        encode=target_encoder(cfg),
        cache=cache,
    )
    options = tf.data.Options()
    options.threading.private_threadpool_size = args.cores
    options.threading.max_intra_op_parallelism = 1
    return ds.with_options(options)


def consume(ds: Any, batches: int) -> int:
    """Iterate a fresh iterator over ``batches`` batches; the number of images seen."""
    images = 0
    for x, _ in ds.take(batches):
        images += int(x.shape[0])
    return images


def worker(args: argparse.Namespace) -> None:
    """Measure every case on ``args.cores`` cores; print one JSON line per (case, candidate)."""
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.cores]))
    common.set_threads(args.cores)
    from benchmarks.train_speed import kyolo_candidates
    from kyolo import data

    paths = data.make_digits(args.data_dir)
    train = data.read_yolo(paths.train_images, paths.train_labels, len(paths.class_names))
    for case in args.cases:
        model, size = case.split(":")
        cfg = case_config(model, int(size), train, args.seed)
        canvas_mb = len(train) * int(size) ** 2 * 3 * 4 / 2**20
        caches = [c for c in args.cache if not c or canvas_mb <= args.cache_limit_mb]
        datasets = {
            f"{v}{', cached' if c else ''}": pipeline(train, cfg, v, c, args)
            for v in args.variants
            for c in caches
        }
        x, y_true = next(iter(next(iter(datasets.values()))))
        step = kyolo_candidates(model, cfg, "float32", x, list(y_true), ["graph"])
        cpu: dict[str, list[float]] = {}
        candidates = {v: common.cpu_timed(lambda ds=ds: consume(ds, args.batches),
                                       cpu.setdefault(v, []))
                      for v, ds in datasets.items()}  # fmt: skip
        candidates["step"] = common.cpu_timed(step[("graph", "step")], cpu.setdefault("step", []))
        common.block(candidates["step"]())  # compiles
        repeats = args.repeats if model == "nano" else args.large_repeats
        times = common.interleaved(candidates, 1, repeats)
        for name, seconds in times.items():
            images = args.batch * (1 if name == "step" else args.batches)
            print(json.dumps({
                "case": case,
                "cores": args.cores,
                "name": name,
                "images_s": images / (common.median_ms(seconds) / 1e3),
                "spread": common.spread(seconds),
                "cpu_images_s": images / (common.median_ms(cpu[name][-repeats:]) / 1e3),
                "loadavg": os.getloadavg()[0],
            }), flush=True)  # fmt: skip


def report(rows: list[dict]) -> None:
    table, verdicts = [], []
    for case in dict.fromkeys(r["case"] for r in rows):
        for cores in dict.fromkeys(r["cores"] for r in rows if r["case"] == case):
            group = [r for r in rows if r["case"] == case and r["cores"] == cores]
            step = next(r for r in group if r["name"] == "step")
            for r in group:
                ratio = r["images_s"] / step["images_s"]
                table.append([
                    case,
                    str(cores),
                    "training step (graph, float32)" if r["name"] == "step" else r["name"],
                    f"{r['images_s']:,.0f} {r['spread']}".strip(),
                    f"{r['cpu_images_s']:,.0f}",
                    "" if r["name"] == "step" else f"{ratio:.1f}x",
                    f"{r['loadavg']:.2f}",
                ])  # fmt: skip
                if r["name"] != "step":
                    verdict = "met" if ratio >= TARGET else "NOT met"
                    verdicts.append(f"- {case}, {cores} core(s), {r['name']}: {ratio:.1f}x the "
                                    f"step ({verdict})")  # fmt: skip
    headers = ["case", "cores", "pipeline", "images/s (IQR)", "images per CPU-s",
               "vs step", "loadavg"]  # fmt: skip
    print(common.table(headers, table))
    print(f"\ntarget: pipeline >= {TARGET:.0f}x the step rate of the model it feeds, same cores")
    print("\n".join(verdicts))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", nargs="+", default=["nano:128", "yolov3_tiny:416"], help="MODEL:SIZE"
    )
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--cache",
        nargs="+",
        type=lambda v: {"off": False, "on": True}[v],
        default=[False, True],
        help="make_dataset(cache=...): off, on or both",
    )
    parser.add_argument(
        "--cache-limit-mb", type=float, default=1024, help="cache only if the canvases fit"
    )
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=20, help="batches per pipeline call")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds, nano")
    parser.add_argument("--large-repeats", type=int, default=3, help="timed rounds, other models")
    parser.add_argument("--data-dir", default=os.path.join("runs", "digitsdet"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from kyolo.models import STRIDES

    for case in args.cases:
        model, sep, size = case.partition(":")
        if not sep or model not in STRIDES or not size.isdigit():
            parser.error(f"case {case!r}: expected MODEL:SIZE, MODEL in {sorted(STRIDES)}")
    if args.worker and len(args.cores) != 1:
        parser.error("a worker takes one --cores value")
    if max(args.cores) > len(os.sched_getaffinity(0)) or min(args.cores) < 1:
        parser.error(f"--cores must be in [1, {len(os.sched_getaffinity(0))}]")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        args.cores = args.cores[0]
        worker(args)
        return
    import keras  # noqa: F401 - versions for the header only; this process runs no TF op
    import tensorflow as tf  # noqa: F401

    info = common.machine()
    common.print_machine(info, max(args.cores))
    start = time.perf_counter()
    rows = []
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
    for cores in args.cores:
        command = [sys.executable, "-m", "benchmarks.input_pipeline", *forwarded, "--worker"]
        command += ["--cores", str(cores)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode:
            print(f"{cores} core(s): worker failed:\n{result.stderr[-3000:]}")
            continue
        rows += [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    print(f"\n### Input pipeline vs training step, DigitsDet, batch {args.batch}\n")
    report(rows)
    print(f"\nwhole run: {(time.perf_counter() - start) / 60:.1f} min; loadavg at start "
          f"{info['loadavg'][0]:.2f}, at end {os.getloadavg()[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
