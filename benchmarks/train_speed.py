"""Training-step images/s: kyolo against YOLOv5's PyTorch code on the same architecture.

kyolo: ``kyolo.models.build_model`` + one :class:`kyolo.losses.YoloLoss` per scale (the
:data:`kyolo.config.YOLOV5` loss, as ``training/train.py`` defaults to) + :func:`kyolo.optim.
build_optimizer` ``("sgd")`` with the loss-component metrics, compiled as ``training/train.py``
compiles it; a step is ``model.train_on_batch(x, y_true)`` (forward, loss, backward, update, the
model's L2 penalties), in graph mode or under XLA (``jit_compile``), float32 or the Keras
``mixed_bfloat16`` policy. PyTorch: YOLOv5 v7.0's own ``Model`` from the same architecture's
``models/hub`` yaml, ``ComputeLoss`` and its SGD (:mod:`benchmarks.torch_yolov5_train`, run by
``--torch-python`` in its own virtual environment), float32 or ``torch.autocast`` bfloat16.
Both take the same random images and 10 random boxes per image (kyolo's targets encoded before
timing, YOLOv5's rows built inside its loss as in its training loop), on the same threads.

Each (model, precision) is one pool: kyolo's modes and the torch step timed interleaved (one
call each per round, the order rotated; a first call and one warm-up call untimed), medians
reported, kyolo's speed over torch's within the pool. The torch step runs in two servers, with
``OMP_WAIT_POLICY=PASSIVE`` and unset (:data:`OMP_POLICIES`), and kyolo is compared with the
faster. ``CPU ms`` is the process CPU time of a step (all threads; TensorFlow's process for kyolo,
the server's for torch): the work done, which neighbours on a shared machine disturb far less
than the wall clock. ``--parts`` adds ablations on both sides:
``backward`` (forward, loss and gradient, no optimizer update) and ``forward`` (forward and
loss); the differences say how a step splits into forward, backward and update.

The architectures are the same networks, not identical ones: kyolo's ``yolov3`` is keras-yolo3's
Darknet-53 YOLOv3 (LeakyReLU), YOLOv5's ``yolov3.yaml`` the same backbone with SiLU and
bottleneck blocks in the head; ``yolov3_tiny`` likewise. The parameter counts are printed.

Run from the repository root::

    .venv/bin/python -m benchmarks.train_speed --torch-python /work/venv-torch/bin/python
    .venv/bin/python -m benchmarks.train_speed --models yolov3_tiny --parts backward forward
"""

from __future__ import annotations

import argparse
import gc
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import common

YAMLS = {"yolov3": "yolov3.yaml", "yolov3_tiny": "yolov3-tiny.yaml"}
"""kyolo model → the YOLOv5 ``models/hub`` yaml of the same architecture."""
TORCH_PRECISION = {"float32": "float32", "mixed_bfloat16": "bfloat16"}
MODES = ("graph", "xla")
PARTS = ("step", "backward", "forward")
TORCH = "yolov5 (torch)"
TORCH_SCRIPT = pathlib.Path(__file__).with_name("torch_yolov5_train.py")
OMP_POLICIES = {"passive": "PASSIVE", "default": None}
"""``--torch-omp`` → the torch server's ``OMP_WAIT_POLICY`` (None: unset, libgomp's brief spin).
Which is faster depends on the neighbours' load, so both are measured; kyolo is compared with the
faster."""
TARGET_EVERY_ROW, TARGET_BEST = 1.0, 1.5
"""The issue's targets: kyolo ≥ 1.0× torch's images/s in every row, ≥ 1.5× in its best setting."""


def case_config(model: str, size: int, classes: int) -> Any:
    """YOLOv5's loss on the model's strides with the anchors of YOLOv5's yaml for it."""
    from kyolo.config import YOLOV3_TINY, YOLOV5
    from kyolo.models import STRIDES

    anchors = YOLOV3_TINY.anchors if model == "yolov3_tiny" else YOLOV5.anchors
    return YOLOV5.with_geometry(
        strides=STRIDES[model], input_size=(size, size), num_classes=classes, anchors=anchors
    )


def kyolo_candidates(
    model_name: str,
    cfg: Any,
    precision: str,
    x: Any,
    y_true: list,
    modes: list[str],
    parts: list[str] = (),
    seed: int = 0,
) -> dict[tuple[str, str], Any]:
    """``(mode, part) → call`` for every mode and part, models built under ``precision``, and
    ``(mode, "params") →`` the parameter count."""
    import keras
    import tensorflow as tf

    from kyolo.losses import YoloLoss
    from kyolo.metrics import YoloLossComponents
    from kyolo.models import build_model
    from kyolo.optim import DEFAULTS, build_optimizer

    keras.mixed_precision.set_global_policy(precision)
    candidates = {}
    try:
        for mode in modes:
            keras.utils.set_random_seed(seed)
            model = build_model(model_name, cfg)
            losses = [YoloLoss(cfg, s) for s in range(cfg.num_scales)]
            model.compile(
                optimizer=build_optimizer("sgd", DEFAULTS["sgd"]["learning_rate"]),
                loss=losses,
                metrics=[[YoloLossComponents(loss)] for loss in losses],
                jit_compile=mode == "xla",
            )
            candidates[(mode, "step")] = lambda m=model: m.train_on_batch(x, y_true)
            for part in parts:
                fn = tf.function(ablation(model, losses, part), jit_compile=mode == "xla")
                candidates[(mode, part)] = lambda fn=fn: fn(x, y_true)
            candidates[(mode, "params")] = model.count_params()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return candidates


def ablation(model: Any, losses: list, part: str) -> Callable:
    """The step without its update (``backward``) or without gradients (``forward``)."""
    import tensorflow as tf

    def loss_of(x: Any, y_true: list) -> Any:
        outputs = model(x, training=True)
        total = tf.add_n([fn(y, o) for fn, y, o in zip(losses, y_true, outputs, strict=True)])
        return total + tf.add_n(model.losses) if model.losses else total

    def backward(x: Any, y_true: list) -> Any:
        with tf.GradientTape() as tape:
            total = loss_of(x, y_true)
        return total, tape.gradient(total, model.trainable_variables)

    return backward if part == "backward" else loss_of


def start_torch(
    model_name: str, inputs: str, policy: str, args: argparse.Namespace
) -> common.Server | str:
    """The YOLOv5 step server with OpenMP wait ``policy``, or why it is skipped."""
    python = args.torch_python
    if not python or not pathlib.Path(python).exists():
        return f"skipped: no torch interpreter at {python!r} (--torch-python)"
    command = [python, str(TORCH_SCRIPT), "--yaml", YAMLS[model_name], "--inputs", inputs]
    command += ["--classes", str(args.classes), "--threads", str(args.threads)]
    try:
        return common.Server(command, omp_wait_policy=OMP_POLICIES[policy])
    except (RuntimeError, OSError, ValueError) as error:
        return f"skipped: torch server failed ({error})"


def measure_pool(
    model_name: str, precision: str, args: argparse.Namespace
) -> tuple[list[list[str]], dict]:
    """Time one (model, precision) pool; the table rows and the figures for the verdicts."""
    import keras
    import tensorflow as tf

    cfg = case_config(model_name, args.size, args.classes)
    y_np, boxes, classes = common.encoded_batch(cfg, args.batch, args.boxes, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    images = rng.uniform(0.0, 1.0, (args.batch, args.size, args.size, 3)).astype(np.float32)
    x, y_true = tf.constant(images), [tf.constant(a) for a in y_np]
    with tempfile.TemporaryDirectory() as tmp:
        inputs = os.path.join(tmp, "case.npz")
        np.savez(inputs, images=images, targets=common.yolov5_rows(boxes, classes))
        servers = {p: start_torch(model_name, inputs, p, args) for p in args.torch_omp}
        built = kyolo_candidates(
            model_name, cfg, precision, x, y_true, args.modes, args.parts, args.seed
        )
    params = {mode: built.pop((mode, "params")) for mode in args.modes}
    cpu: dict[tuple, list[float]] = {}
    candidates = {("kyolo", *key): common.cpu_timed(fn, cpu.setdefault(("kyolo", *key), []))
                  for key, fn in built.items()}  # fmt: skip
    for policy, server in servers.items():
        if not isinstance(server, common.Server):
            continue
        for part in ["step", *args.parts]:
            key = (f"{TORCH} OMP {policy}", "eager", part)

            def call(server: common.Server = server, part: str = part, key: tuple = key) -> None:
                _, seconds, _ = server(f"step {TORCH_PRECISION[precision]} {part}").split()
                cpu.setdefault(key, []).append(float(seconds))

            candidates[key] = call
    first = {}
    try:
        for key, fn in candidates.items():
            start = time.perf_counter()
            common.block(fn())
            first[key] = time.perf_counter() - start
        repeats = args.tiny_repeats if model_name == "yolov3_tiny" else args.repeats
        times = common.interleaved(candidates, 1, repeats)
    finally:
        for server in servers.values():
            if isinstance(server, common.Server):
                server.close()
        candidates.clear()
        built.clear()
        keras.backend.clear_session()
        gc.collect()
    cpu = {key: seconds[2:] for key, seconds in cpu.items()}  # first and warm-up calls untimed
    return table_rows(model_name, precision, args, times, first, servers, params, cpu)


def table_rows(
    model_name: str,
    precision: str,
    args: argparse.Namespace,
    times: dict,
    first: dict,
    servers: dict,
    params: dict,
    cpu: dict,
) -> tuple[list[list[str]], dict]:
    """Rows of one pool; ``figures[(model, precision, mode)]``: kyolo's speed over the faster
    torch step."""
    torch_steps = [
        common.median_ms(t) for k, t in times.items() if k[0] != "kyolo" and k[2] == "step"
    ]
    torch_ms = min(torch_steps) if torch_steps else None
    rows, figures = [], {}
    for key, seconds in times.items():
        impl, mode, part = key
        ms = common.median_ms(seconds)
        if impl == "kyolo":
            name, count = "kyolo", params[mode]
        else:
            header = servers[impl.rsplit(" ", 1)[-1]].header
            name = f"{impl}, torch {header['torch']}, yolov5 {header['yolov5']}"
            count = header["parameters"]
        ratio = f"{torch_ms / ms:.2f}x" if torch_ms and part == "step" else ""
        if part == "step" and impl == "kyolo":
            figures[(model_name, precision, mode)] = torch_ms / ms if torch_ms else None
        rows.append(
            [
                model_name,
                precision,
                name,
                mode,
                part,
                f"{count / 1e6:.2f}M",
                f"{first[key]:.1f}",
                f"{ms:.0f} {common.spread(seconds)}".strip(),
                f"{common.median_ms(cpu[key]):.0f}" if cpu.get(key) else "",
                f"{1e3 * args.batch / ms:.2f}" if part == "step" else "",
                ratio,
            ]
        )
    for policy, server in servers.items():
        if not isinstance(server, common.Server):
            rows.append([model_name, precision, f"{TORCH} OMP {policy}", "eager", "step", "", "",
                         server, "", "", ""])  # fmt: skip
    return rows, figures


HEADERS = [
    "model",
    "precision",
    "implementation",
    "mode",
    "part",
    "params",
    "first call s",
    "median ms (IQR)",
    "CPU ms",
    "images/s",
    "speed vs torch",
]


def print_verdicts(figures: dict) -> None:
    ratios = {key: r for key, r in figures.items() if r is not None}
    if not ratios:
        return
    print(f"\ntargets: kyolo >= {TARGET_EVERY_ROW}x torch in every row, >= {TARGET_BEST}x in the "
          "best kyolo setting")  # fmt: skip
    for (model, precision, mode), ratio in ratios.items():
        verdict = "met" if ratio >= TARGET_EVERY_ROW else "NOT met"
        print(f"- {model} {precision} {mode}: {ratio:.2f}x ({verdict})")
    for model in dict.fromkeys(key[0] for key in ratios):
        best = max((r, key) for key, r in ratios.items() if key[0] == model)
        verdict = "met" if best[0] >= TARGET_BEST else "NOT met"
        print(f"- {model} best: {best[1][1]} {best[1][2]} {best[0]:.2f}x ({verdict})")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(YAMLS), choices=sorted(YAMLS))
    parser.add_argument(
        "--precisions", nargs="+", default=list(TORCH_PRECISION), choices=list(TORCH_PRECISION)
    )
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument(
        "--parts", nargs="*", default=[], choices=PARTS[1:], help="ablations on both sides"
    )
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--boxes", type=int, default=10, help="random boxes per image")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds, yolov3")
    parser.add_argument("--tiny-repeats", type=int, default=7, help="timed rounds, yolov3_tiny")
    parser.add_argument("--threads", type=int, default=2, help="TF and torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-python", default="/work/venv-torch/bin/python")
    parser.add_argument(
        "--torch-omp", nargs="+", default=list(OMP_POLICIES), choices=list(OMP_POLICIES)
    )
    args = parser.parse_args(argv)
    if min(args.batch, args.repeats, args.tiny_repeats, args.size) < 1:
        parser.error("--batch, --repeats, --tiny-repeats and --size must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    common.set_threads(args.threads)
    info = common.machine()
    common.print_machine(info, args.threads)
    start = time.perf_counter()
    rows, figures = [], {}
    for model_name in args.models:
        for precision in args.precisions:
            pool_start = time.perf_counter()
            r, f = measure_pool(model_name, precision, args)
            rows += r
            figures.update(f)
            load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
            print(f"{model_name} {precision}: {time.perf_counter() - pool_start:.0f} s "
                  f"(loadavg {load})", flush=True)  # fmt: skip
    print(
        f"\n### Training step, {args.size}x{args.size}, batch {args.batch}, {args.classes} "
        f"classes, {args.boxes} boxes/image, {args.threads} threads\n"
    )
    print(common.table(HEADERS, rows))
    print_verdicts(figures)
    print(f"\nwhole run: {(time.perf_counter() - start) / 60:.1f} min; loadavg at start "
          f"{info['loadavg'][0]:.2f}, at end {os.getloadavg()[0]:.2f}")  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()
