"""Share of a Keras training step spent in the YOLO loss: YOLOv3-416 and the nano model.

A step is ``model.train_on_batch(x, y)`` of a model compiled as ``training/train.py`` does it:
one :class:`kyolo.losses.YoloLoss` per output scale, Adam, the model's L2 penalties; forward,
loss, backward and optimizer update in one ``tf.function`` (``jit_compile=True``: XLA). Its
*ablation* is the same step of an identically initialised model whose losses are
:class:`TrivialLoss` (``mean(y_pred²)`` per image: same outputs, same ``y_true`` fed, a non-zero
gradient into every head, no YOLO work). Then

* ``loss share, ablation`` = (step − ablated step) / step, from the medians of interleaved
  rounds, of the wall clock and of the process CPU time (all threads); the CPU time is far less
  hurt than the wall clock when a neighbour takes a core on a shared machine;
* ``loss alone``: the sum of the per-scale ``YoloLoss`` values (Keras reduction included),
  forward + backward with respect to random head outputs of the model's output dtype, as in
  :mod:`benchmarks.loss_speed`, in the same mode and the same rounds. ``loss alone / step`` is
  the share to judge the 5 % target by: the ablation is a difference of two long, noisy step
  times, and shows only that the step costs nothing beyond the loss itself (within its noise).

Each (case, precision) is one pool of candidates (both modes' step, ablated step and loss alone)
timed interleaved (untimed: a first call, compiling, then one warm-up call each); the models of
a pool are freed before the next. Precisions: ``float32`` and the Keras mixed policies
``mixed_bfloat16`` (native bf16 on CPUs with AVX512_BF16 / AMX) and ``mixed_float16``
(emulated on most CPUs, slow: run on the ``--float16-cases`` only; its optimizer is a
``LossScaleOptimizer`` with ``initial_scale=1`` so that no timed step is skipped by the dynamic
loss scale). ``first call s`` is the step's first call (tracing, compilation, one step). Inputs
are random images and kyolo's encoder on 10 random boxes per image, computed before timing.

Cases are ``model:preset``: ``yolov3`` at ``--size`` (416) with the preset's 80 classes, ``nano``
at ``--nano-size`` (128) with ``--nano-classes`` (10) and strides (16, 8) as
``training/train.py`` builds it; anchors are the preset's smallest, scaled to the input size.
``v3`` is :data:`kyolo.config.YOLOV3` (keras-yolo3's loss), ``v5`` :data:`kyolo.config.YOLOV5`
(YOLOv5's loss) re-ordered to the model's strides.

Run from the repository root::

    .venv/bin/python -m benchmarks.train_step    # ~13 min on 2 busy cores (loadavg 2.5-3)
    .venv/bin/python -m benchmarks.train_step --cases nano:v3 nano:v5 --nano-repeats 20  # ~5 min
    .venv/bin/python -m benchmarks.train_step --cases yolov3:v5 --float16-cases      # ~10 min
    .venv/bin/python -m benchmarks.train_step --cases yolov3:v3 --float16-cases \\
        --precisions mixed_bfloat16 --modes graph --repeats 10                      # ~2 min
    .venv/bin/python -m benchmarks.train_step --set target_layout=sparse   # any config override
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import common

MODES = ("graph", "xla")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
SMALL_MODELS = ("nano",)
"""Models that take the ``--nano-*`` size, classes, batch and repeats."""
DEFAULT_CASES = ["yolov3:v3", "nano:v3", "nano:v5"]
TARGET_SHARE = 0.05
"""The issue's target: the loss at most 5 % of a YOLOv3-416 training step."""


def trivial_loss_class() -> type:
    """:class:`TrivialLoss`, defined lazily so that importing this module does not load Keras."""
    import keras
    from keras import ops

    class TrivialLoss(keras.losses.Loss):
        """``mean(y_pred²)`` per image: ignores ``y_true``, a non-zero gradient ``2 y_pred / n``.

        The stand-in for ``YoloLoss`` in the ablated step: Keras casts ``y_pred`` to float32 and
        reduces exactly as for the real loss, so only the YOLO work itself is missing.
        """

        def call(self, y_true: Any, y_pred: Any) -> Any:
            del y_true
            return ops.mean(ops.square(y_pred), axis=tuple(range(1, len(y_pred.shape))))

    return TrivialLoss


def case_config(model: str, preset: str, args: argparse.Namespace) -> Any:
    """The preset's loss on the model's strides, input size and class count (plus ``--set``),
    with the preset's smallest anchors scaled to this input size (:mod:`kyolo.anchors`)."""
    from kyolo.anchors import preset_anchors
    from kyolo.config import PRESETS
    from kyolo.models import STRIDES

    base = PRESETS[{"v3": "yolov3", "v5": "yolov5"}.get(preset, preset)]
    strides = STRIDES[model]
    small = model in SMALL_MODELS
    size = args.nano_size if small else args.size
    anchors = preset_anchors(base, base.anchors_per_scale * len(strides), (size, size))
    cfg = base.with_geometry(
        strides=strides,
        input_size=(size, size),
        num_classes=args.nano_classes if small else base.num_classes,
        anchors=anchors,
    )
    return cfg.with_overrides(args.set)


def first_call(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds of the first (tracing, compiling) call and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def make_optimizer(precision: str) -> Any:
    import keras

    optimizer = keras.optimizers.Adam(1e-4)
    if precision == "mixed_float16":  # Keras would wrap it with initial_scale=2**15 and skip steps
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=1.0)
    return optimizer


def loss_alone(cfg: Any, batch: int, dtype: str, mode: str, y_true: list) -> Callable[[], Any]:
    """Forward + backward of the summed per-scale ``YoloLoss`` w.r.t. random head outputs."""
    import tensorflow as tf

    from kyolo.losses import YoloLoss

    losses = [YoloLoss(cfg, s) for s in range(cfg.num_scales)]
    heads = [tf.cast(tf.constant(h), dtype) for h in common.head_outputs(cfg, batch)]

    def step(outputs: list, targets: list) -> tuple:
        with tf.GradientTape() as tape:
            tape.watch(outputs)
            total = tf.add_n([fn(y, o) for fn, y, o in zip(losses, targets, outputs, strict=True)])
        return total, tape.gradient(total, outputs)

    fn = tf.function(step, jit_compile=mode == "xla")
    return lambda: fn(heads, y_true)


@dataclasses.dataclass
class Pool:
    """What one (case, precision) pool measured, by ``(kind, mode)``, kind ``step``, ``ablated``
    or ``loss`` (loss alone).

    ``wall`` and ``cpu``: seconds per timed call (wall clock, and this process's CPU time, all
    threads: far less sensitive than the wall clock to a neighbour taking a core); ``first``:
    seconds of the first call (tracing, compilation, one step); ``failures``: why a candidate
    did not run; ``values``: the loss each step returned, to check that the model trains.
    """

    wall: dict = dataclasses.field(default_factory=dict)
    cpu: dict = dataclasses.field(default_factory=dict)
    first: dict = dataclasses.field(default_factory=dict)
    failures: dict = dataclasses.field(default_factory=dict)
    values: dict = dataclasses.field(default_factory=dict)


def measure_pool(
    model_name: str, cfg: Any, precision: str, batch: int, repeats: int, args: argparse.Namespace
) -> Pool:
    """Build, compile and time one (case, precision) pool, interleaved.

    Every candidate gets one untimed first call (compilation) and one untimed warm-up call (the
    second call of a big model can still be slow: allocator growth, oneDNN primitive caches).
    """
    import keras
    import tensorflow as tf

    from kyolo.losses import YoloLoss
    from kyolo.models import build_model

    trivial = trivial_loss_class()
    y_np, _, _ = common.encoded_batch(cfg, batch, args.boxes, seed=args.seed)
    y_true = [tf.constant(a) for a in y_np]
    rng = np.random.default_rng(args.seed)
    x = tf.constant(rng.uniform(0.0, 1.0, (batch, *cfg.input_size, 3)).astype(np.float32))
    keras.mixed_precision.set_global_policy(precision)
    pool = Pool()
    candidates: dict[tuple[str, str], Callable[[], Any]] = {}
    try:
        dtype = keras.mixed_precision.global_policy().compute_dtype
        for mode in args.modes:
            for kind in ("step", "ablated"):
                key = (kind, mode)
                keras.utils.set_random_seed(args.seed)  # step and ablation start from equal weights
                model = build_model(model_name, cfg)
                if kind == "step":
                    losses = [YoloLoss(cfg, s) for s in range(cfg.num_scales)]
                else:
                    losses = [trivial(name=f"trivial_{s}") for s in range(cfg.num_scales)]
                model.compile(
                    optimizer=make_optimizer(precision), loss=losses, jit_compile=mode == "xla"
                )

                def train(model: Any = model, key: tuple = key) -> Any:
                    logs = model.train_on_batch(x, y_true)
                    pool.values.setdefault(key, []).append(float(np.ravel(logs)[0]))
                    return logs

                candidates[key] = train
            candidates[("loss", mode)] = loss_alone(cfg, batch, dtype, mode, y_true)
        for key in list(candidates):
            try:
                pool.first[key], _ = first_call(candidates[key])
            except Exception as error:  # an XLA compile failure is a result, not a crash
                pool.failures[key] = f"{type(error).__name__}: {str(error).strip()[:300]}"
                del candidates[key]
                continue
            candidates[key] = common.cpu_timed(candidates[key], pool.cpu.setdefault(key, []))
        pool.wall = common.interleaved(candidates, 1, repeats)
        for cpu in pool.cpu.values():
            del cpu[0]  # the warm-up call
    finally:
        candidates.clear()
        keras.mixed_precision.set_global_policy("float32")
        keras.backend.clear_session()
        gc.collect()
    return pool


def ms(times: dict, key: tuple) -> float | None:
    return common.median_ms(times[key]) if key in times else None


def fmt(value: float | None, spec: str = ".0f", suffix: str = "") -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:{spec}}{suffix}"


def share(step: float | None, other: float | None) -> float | None:
    return (step - other) / step if step and other is not None else None


def percent(value: float | None) -> str:
    return fmt(None if value is None else 100 * value, ".1f", " %")


def pool_rows(
    case: str, precision: str, batch: int, modes: list[str], pool: Pool
) -> tuple[list[list[str]], list[str], list[dict]]:
    """Table rows, notes and the raw figures of one pool."""
    rows, notes, figures = [], [], []
    for mode in modes:
        step, ablated, alone = (ms(pool.wall, (k, mode)) for k in ("step", "ablated", "loss"))
        cpu_step, cpu_ablated = (ms(pool.cpu, (k, mode)) for k in ("step", "ablated"))
        by_wall, by_cpu = share(step, ablated), share(cpu_step, cpu_ablated)
        alone_share = alone / step if step and alone is not None else None
        rows.append(
            [
                case,
                precision,
                mode,
                str(batch),
                fmt(pool.first.get(("step", mode)), ".1f"),
                f"{fmt(step)} {common.spread(pool.wall.get(('step', mode), []))}".strip(),
                fmt(ablated),
                percent(by_wall),
                f"{fmt(cpu_step)} / {fmt(cpu_ablated)}",
                percent(by_cpu),
                fmt(alone, ".1f"),
                percent(alone_share),
                fmt(None if step is None else 1e3 * batch / step, ".2f"),
            ]
        )
        figures.append(
            {
                "case": case,
                "precision": precision,
                "mode": mode,
                "step": step,
                "cpu_step": cpu_step,
                "wall": by_wall,
                "cpu": by_cpu,
                "alone": alone_share,
            }
        )
        for kind in ("step", "ablated", "loss"):
            if (kind, mode) in pool.failures:
                notes.append(f"{case} {precision} {mode} {kind}: failed, "
                             f"{pool.failures[(kind, mode)]}")  # fmt: skip
        seen = pool.values.get(("step", mode), [])
        if seen and not all(math.isfinite(v) for v in seen):
            notes.append(f"{case} {precision} {mode}: non-finite loss during the run {seen}")
        elif len(seen) > 1 and seen[0] == seen[-1]:
            notes.append(f"{case} {precision} {mode}: loss unchanged over the run (no update?)")
    return rows, notes, figures


HEADERS = [
    "case",
    "precision",
    "mode",
    "batch",
    "first call s",
    "step ms (IQR)",
    "ablated ms",
    "loss share, ablation (wall)",
    "CPU ms step / ablated",
    "loss share, ablation (CPU)",
    "loss alone ms",
    "loss alone / step",
    "images/s",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", nargs="+", default=DEFAULT_CASES, help="model:preset, preset v3 or v5"
    )
    parser.add_argument(
        "--precisions", nargs="+", default=["float32", "mixed_bfloat16"], choices=PRECISIONS
    )
    parser.add_argument(
        "--float16-cases",
        nargs="*",
        default=["nano:v3"],
        help="cases also run under mixed_float16 (slow on CPU); none: --float16-cases",
    )
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--size", type=int, default=416, help="yolov3 input size")
    parser.add_argument("--batch", type=int, default=2, help="yolov3 batch")
    parser.add_argument("--repeats", type=int, default=4, help="timed rounds, yolov3")
    parser.add_argument("--nano-size", type=int, default=128)
    parser.add_argument("--nano-classes", type=int, default=10)
    parser.add_argument("--nano-batch", type=int, default=16)
    parser.add_argument("--nano-repeats", type=int, default=10, help="timed rounds, nano")
    parser.add_argument("--boxes", type=int, default=10, help="random boxes per image")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="config override for every case, as training/train.py's --set (loss.FIELD for the "
        "loss, values JSON), e.g. target_layout=sparse; repeatable",
    )
    args = parser.parse_args(argv)
    from kyolo.models import STRIDES

    for case in [*args.cases, *args.float16_cases]:
        model, sep, preset = case.partition(":")
        if not sep or model not in STRIDES or preset not in ("v3", "v5"):
            parser.error(f"case {case!r}: expected MODEL:PRESET with MODEL in "
                         f"{sorted(STRIDES)} and PRESET v3 or v5")  # fmt: skip
    if min(args.batch, args.nano_batch, args.repeats, args.nano_repeats) < 1:
        parser.error("--batch, --nano-batch, --repeats and --nano-repeats must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    common.set_threads(args.threads)
    info = common.machine()
    common.print_machine(info, args.threads)
    print(f"kyolo: {source_version()}")
    start = time.perf_counter()
    cases = list(dict.fromkeys([*args.cases, *args.float16_cases]))
    rows, notes, figures = [], [], []
    for case in cases:
        model, _, preset = case.partition(":")
        small = model in SMALL_MODELS
        batch = args.nano_batch if small else args.batch
        repeats = args.nano_repeats if small else args.repeats
        precisions = [p for p in args.precisions if case in args.cases]
        if case in args.float16_cases and "mixed_float16" not in precisions:
            precisions.append("mixed_float16")
        cfg = case_config(model, preset, args)
        for precision in precisions:
            pool_start = time.perf_counter()
            try:
                result = measure_pool(model, cfg, precision, batch, repeats, args)
            except Exception as error:  # one broken case should not hide the others
                notes.append(f"{case} {precision}: failed, {type(error).__name__}: {error}")
                continue
            r, n, f = pool_rows(case, precision, batch, args.modes, result)
            rows += r
            notes += n
            figures += f
            load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
            print(
                f"{case} {precision}: {time.perf_counter() - pool_start:.0f} s (loadavg {load})",
                flush=True,
            )
    print(
        f"\n### Training step: YOLO loss vs trivial loss, {args.boxes} boxes/image, "
        f"{args.threads} threads\n"
    )
    print(common.table(HEADERS, rows))
    if notes:
        print("\n" + "\n".join(f"- {n}" for n in notes))
    print_speedups(figures)
    print_target(figures)
    elapsed = time.perf_counter() - start
    print(f"\nwhole run: {elapsed / 60:.1f} min; loadavg at start {info['loadavg'][0]:.2f}")
    sys.stdout.flush()


def source_version() -> str:
    """The commit measured, and whether ``kyolo/`` has uncommitted changes (read-only git)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*command: str) -> str:
        return subprocess.run(["git", *command], cwd=root, capture_output=True, text=True).stdout

    try:
        head = git("rev-parse", "--short", "HEAD").strip()
        dirty = git("status", "--porcelain", "--", "kyolo").split("\n")
    except OSError:
        return "commit unknown (no git)"
    changed = [line[3:] for line in dirty if line.strip()]
    return f"commit {head or '?'}" + (f", uncommitted: {' '.join(changed)}" if changed else "")


def print_speedups(figures: list[dict]) -> None:
    """Step time of every (case, precision, mode) relative to the case's float32 graph step, by
    the wall clock and by CPU time (the latter steadier across pools on a shared machine)."""
    lines = []
    for case in dict.fromkeys(f["case"] for f in figures):
        rows = [f for f in figures if f["case"] == case and f["step"] and f["cpu_step"]]
        base = next((f for f in rows if f["precision"] == "float32" and f["mode"] == "graph"), None)
        if base is None:
            continue
        parts = [
            f"{f['precision']} {f['mode']} {base['step'] / f['step']:.2f}x "
            f"({base['cpu_step'] / f['cpu_step']:.2f}x)"
            for f in rows
        ]
        lines.append(f"- {case}: " + ", ".join(parts))
    if lines:
        print(
            "\nspeed-up over float32 graph, wall clock (CPU time); each precision is its own pool, "
            "so these compare rounds that a neighbour's load may have hit differently:"
        )
        print("\n".join(lines))


def print_target(figures: list[dict]) -> None:
    rows = [f for f in figures if f["case"].startswith("yolov3:") and f["step"]]
    if not rows:
        return
    print(f"\ntarget: loss <= {100 * TARGET_SHARE:.0f} % of a YOLOv3 step")
    for f in rows:
        verdict = "met" if f["alone"] is not None and f["alone"] <= TARGET_SHARE else "NOT met"
        print(
            f"- {f['case']} {f['precision']} {f['mode']}: loss alone {percent(f['alone'])} "
            f"({verdict}); ablation {percent(f['wall'])} wall, {percent(f['cpu'])} CPU"
        )
    print(
        "  (an ablation is a difference of two noisy step times, the wall clock's the noisier: "
        "trust it only beyond the steps' IQR)"
    )


if __name__ == "__main__":
    main()
