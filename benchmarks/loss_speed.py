"""Speed of the YOLO loss, forward + backward (gradient with respect to the head outputs).

For each preset and input size: kyolo's loss and its baselines in three modes (eager,
``tf.function`` graph, ``tf.function(jit_compile=True)`` XLA), timed interleaved; the median in
ms and the speed-up over the naive graph port. Then the memory-bound estimate: the bytes the loss
must at least move (head outputs and ``y_true`` read, the gradient written, float32) over this
machine's copy bandwidth, measured here with numpy.

Baselines:

* ``naive port``: :mod:`benchmarks.naive_keras_yolo3`, keras-yolo3's ``yolo_loss`` ported to TF2
  as is (``tf.boolean_mask`` per image, so no XLA). Checked against kyolo before timing.
* ``yolov5 (torch)``: YOLOv5's ``ComputeLoss`` in PyTorch (:mod:`benchmarks.torch_yolov5_loss`)
  on the same shapes and thread count, run as a subprocess in the virtual environment named by
  ``--torch-python``; skipped when that interpreter or torch is missing. It is YOLOv5's loss, not
  v3's: a reference point for what a PyTorch YOLO loss costs on this CPU.
* ``--candidate FILE``: any file defining ``yolo_loss(outputs, y_true, cfg)`` (e.g. a scratch
  rewrite of kyolo's loss) joins the v3 table, after the same parity check.

Run from the repository root::

    .venv/bin/python -m benchmarks.loss_speed                 # v3, 416 and 640, ~3 min
    .venv/bin/python -m benchmarks.loss_speed --sizes 416 --repeats 15 --candidate /tmp/x.py

Adding a preset: write a ``<name>_case`` function returning a :class:`Case` and list it in
``CASES``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import pathlib
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import common

NAIVE = "naive port"
TORCH = "yolov5 (torch)"
COPY = ("memory-bound reference", "numpy copy")
MODES = ("eager", "graph", "xla")
TORCH_SCRIPT = pathlib.Path(__file__).with_name("torch_yolov5_loss.py")


@dataclasses.dataclass
class Case:
    """One preset at one input size: inputs, the loss implementations and what to compare.

    ``losses`` map a name to ``fn(outputs, y_true) -> scalar`` on lists of tensors (``y_true``
    is whatever the front-end takes: per-scale grids for v3, YOLOv5's target rows for v5);
    ``no_xla`` names those that cannot compile under XLA, with the reason; ``baseline`` is the
    implementation whose graph-mode time the speed-ups divide (:data:`TORCH`: the torch run);
    ``torch_inputs`` are the arrays of :mod:`benchmarks.torch_yolov5_loss` (``p0..p2``,
    ``targets``).
    """

    title: str
    cfg: Any
    outputs: list[np.ndarray]
    y_true: list[np.ndarray]
    losses: dict[str, Callable]
    baseline: str
    torch_inputs: dict[str, np.ndarray]
    no_xla: dict[str, str] = dataclasses.field(default_factory=dict)


def load_candidate(path: str) -> Callable:
    spec = importlib.util.spec_from_file_location("candidate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.yolo_loss


def check_close(name: str, got: float, want: float, rel: float = 1e-4) -> None:
    if not abs(got - want) <= rel * abs(want):
        raise AssertionError(f"{name}: loss {got!r} differs from kyolo's {want!r} (rel {rel})")


def v3_case(
    size: int,
    batch: int,
    boxes: int,
    candidate: str | None = None,
    max_boxes: int = 100,
    check: bool = True,
) -> Case:
    """keras-yolo3's loss: kyolo's front-end vs the naive port (and a scratch candidate)."""
    import tensorflow as tf

    from benchmarks import naive_keras_yolo3 as naive
    from kyolo.compat import keras_yolo3
    from kyolo.config import YOLOV3

    cfg = YOLOV3.replace(input_size=(size, size), max_boxes=max_boxes)
    anchors = np.asarray(cfg.anchors, np.float32)
    classes_n = cfg.num_classes
    y_true, box_rows, classes = common.encoded_batch(cfg, batch, boxes)
    outputs = common.head_outputs(cfg, batch)
    losses = {
        "kyolo": lambda o, y: keras_yolo3.yolo_loss([*o, *y], anchors, classes_n, 0.5, max_boxes),
        NAIVE: lambda o, y: naive.yolo_loss([*o, *y], anchors, classes_n),
    }
    if check:
        naive_value, kyolo_value = naive.check_parity(
            outputs, y_true, anchors, classes_n, max_boxes
        )
        print(f"parity: naive port {naive_value:.6g} == kyolo {kyolo_value:.6g} (rel 1e-4)")
    if candidate:
        fn = load_candidate(candidate)
        losses["candidate"] = lambda o, y: fn(o, y, cfg)
        args = [tf.constant(a) for a in outputs], [tf.constant(a) for a in y_true]
        if check:
            check_close("candidate", float(losses["candidate"](*args)), kyolo_value)
    return Case(
        title=f"YOLOv3 loss (keras-yolo3 semantics), {size}x{size}, batch {batch}, "
        f"{classes_n} classes, {boxes} boxes/image",
        cfg=cfg,
        outputs=outputs,
        y_true=y_true,
        losses=losses,
        baseline=NAIVE,
        torch_inputs=torch_inputs(cfg, outputs, box_rows, classes),
        no_xla={NAIVE: "tf.boolean_mask has a data-dependent shape"},
    )


def v5_case(
    size: int,
    batch: int,
    boxes: int,
    candidate: str | None = None,
    max_boxes: int = 100,
    check: bool = True,
) -> Case | None:
    """YOLOv5's loss through ``kyolo.compat.yolov5.compute_loss`` vs the torch ``ComputeLoss``.

    Inputs in YOLOv5's layout: ``p`` per scale ``(b, 3, ny, nx, 5 + C)`` (strides 8, 16, 32) and
    the batch's ``(n, 6)`` target rows; kyolo encodes the rows inside the loss.
    """
    if importlib.util.find_spec("kyolo.compat.yolov5") is None:
        print("v5: skipped, kyolo.compat.yolov5 does not exist yet")
        return None
    from kyolo.compat import yolov5
    from kyolo.config import YOLOV5

    cfg = YOLOV5.replace(input_size=(size, size), max_boxes=max_boxes)
    rng = np.random.default_rng(0)
    pairs = [common.random_boxes(rng, boxes, max_boxes, cfg.num_classes) for _ in range(batch)]
    rows = common.yolov5_rows(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))
    heads = common.head_outputs(cfg, batch)
    p = [to_yolov5_layout(h, cfg) for h in heads]
    anchors, strides, hyp = yolov5.yolov5_arguments(cfg)
    losses = {"kyolo": lambda o, y: yolov5.compute_loss(o, y[0], anchors, strides, hyp)[0]}
    return Case(
        title=f"YOLOv5 loss (ComputeLoss semantics), {size}x{size}, batch {batch}, "
        f"{cfg.num_classes} classes, {boxes} boxes/image",
        cfg=cfg,
        outputs=p,
        y_true=[rows],
        losses=losses,
        baseline=TORCH,
        torch_inputs={**{f"p{i}": a for i, a in enumerate(p)}, "targets": rows},
    )


def to_yolov5_layout(head: np.ndarray, cfg: Any) -> np.ndarray:
    """``(b, gh, gw, A * (5 + C))`` → YOLOv5's ``(b, A, gh, gw, 5 + C)``, contiguous."""
    b, gh, gw, _ = head.shape
    p = head.reshape(b, gh, gw, cfg.anchors_per_scale, 5 + cfg.num_classes)
    return np.ascontiguousarray(p.transpose(0, 3, 1, 2, 4))


def torch_inputs(
    cfg: Any, outputs: list[np.ndarray], boxes: np.ndarray, classes: np.ndarray
) -> dict[str, np.ndarray]:
    """The same head outputs and boxes for YOLOv5's ComputeLoss (P3, stride 8, first)."""
    order = np.argsort(cfg.strides)
    arrays = {f"p{i}": to_yolov5_layout(outputs[s], cfg) for i, s in enumerate(order)}
    arrays["targets"] = common.yolov5_rows(boxes, classes)
    return arrays


CASES = {"v3": v3_case, "v5": v5_case}
DEFAULT_SIZES = {"v3": [416, 640], "v5": [640]}


def forward_backward(loss_fn: Callable) -> Callable:
    import tensorflow as tf

    def step(outputs: list, y_true: list) -> tuple:
        with tf.GradientTape() as tape:
            tape.watch(outputs)
            loss = loss_fn(outputs, y_true)
        return loss, tape.gradient(loss, outputs)

    return step


def compiled(loss_fn: Callable, mode: str) -> Callable:
    import tensorflow as tf

    step = forward_backward(loss_fn)
    if mode == "eager":
        return step
    return tf.function(step, jit_compile=mode == "xla")


class TorchBaseline:
    """YOLOv5's ComputeLoss in a torch subprocess (``--serve``), one timed step per call."""

    def __init__(self, case: Case, args: argparse.Namespace) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        inputs = os.path.join(self.tmp.name, "case.npz")
        np.savez(inputs, **case.torch_inputs)
        command = [args.torch_python, str(TORCH_SCRIPT), "--inputs", inputs, "--serve"]
        try:
            self.server = common.Server([*command, "--check", "--threads", str(args.threads)])
        except RuntimeError:
            self.tmp.cleanup()
            raise
        self.header = self.server.header

    def __call__(self) -> float:
        return float(self.server("step"))

    def close(self) -> None:
        self.server.close()
        self.tmp.cleanup()


def start_torch(case: Case, args: argparse.Namespace) -> TorchBaseline | str:
    """The torch baseline, or why it is skipped."""
    python = args.torch_python
    if not python or not pathlib.Path(python).exists():
        return f"skipped: no torch interpreter at {python!r} (--torch-python)"
    try:
        return TorchBaseline(case, args)
    except (RuntimeError, OSError, json.JSONDecodeError) as error:
        return f"skipped: torch subprocess failed ({error})"


def measure(
    case: Case, modes: list[str], warmup: int, repeats: int, extra: dict | None = None
) -> tuple[dict[tuple[str, str], list[float]], dict[tuple[str, str], str]]:
    """Interleaved times of every (implementation, mode) and ``extra`` candidates, and why some
    were not run."""
    import tensorflow as tf

    outputs = [tf.constant(a) for a in case.outputs]
    y_true = [tf.constant(a) for a in case.y_true]
    candidates, skipped = {}, {}
    for name, loss_fn in case.losses.items():
        for mode in modes:
            key = (name, mode)
            if mode == "xla" and name in case.no_xla:
                try:  # show that it really fails rather than assume it
                    compiled(loss_fn, mode)(outputs, y_true)
                except Exception as error:  # any compile error is the point
                    skipped[key] = f"n/a: {case.no_xla[name]} ({type(error).__name__})"
                    continue
            fn = compiled(loss_fn, mode)
            candidates[key] = lambda fn=fn: fn(outputs, y_true)
    candidates.update(extra or {})
    return common.interleaved(candidates, warmup, repeats), skipped


def run_case(case: Case, args: argparse.Namespace, bandwidth: float) -> None:
    torch_run = start_torch(case, args) if args.torch_python else None
    extra = {(TORCH, "eager"): torch_run} if isinstance(torch_run, TorchBaseline) else {}
    copier = common.Copier(minimal_traffic(case)[-1] // 2, args.threads)
    extra[COPY] = copier
    try:
        times, skipped = measure(case, args.modes, args.warmup, args.repeats, extra)
    finally:
        if isinstance(torch_run, TorchBaseline):
            torch_run.close()
    torch_result = torch_run.header if isinstance(torch_run, TorchBaseline) else torch_run
    base_key = (case.baseline, "eager" if case.baseline == TORCH else "graph")
    base = common.median_ms(times[base_key]) if base_key in times else None
    rows = []
    keys = [(n, m) for n in case.losses for m in args.modes] + [(TORCH, "eager"), COPY]
    for name, mode in keys:
        key = (name, mode)
        if key == COPY:
            name = f"{name} ({copier.traffic / 1e6:.0f} MB moved)"
        if name == TORCH:
            if not isinstance(torch_result, dict):
                rows.append([name, mode, torch_result or "skipped", "", ""])
                continue
            name = f"{TORCH} {torch_result['torch']} ComputeLoss"
            if case.baseline != TORCH:
                name += " (YOLOv5's loss, not v3's)"
        elif key in skipped:
            rows.append([name, mode, skipped[key], "", ""])
            continue
        ms = common.median_ms(times[key])
        speedup = f"{base / ms:.1f}x" if base and key != COPY else ""
        rows.append([name, mode, f"{ms:.1f}", common.spread(times[key]), speedup])
    print(f"\n### {case.title}\n")
    base_name = f"{case.baseline} {base_key[1]}"
    headers = ["implementation", "mode", "median ms", "IQR", f"speed-up vs {base_name}"]
    print(common.table(headers, rows))
    if isinstance(torch_result, dict) and case.baseline == TORCH:
        check = torch_result["check"]
        print(f"\ntorch port == NumPy reference: {check[0]:.6g} vs {check[1]:.6g}")
        value = float(
            case.losses["kyolo"](*[list(map(_tensor, x)) for x in (case.outputs, case.y_true)])
        )
        print(f"kyolo {value:.6g} vs torch ComputeLoss {torch_result['loss']:.6g} (equal when no "
              "two target rows share a slot)")  # fmt: skip
    memory_bound(case, times, bandwidth, common.median_ms(times[COPY]))


def _tensor(array: np.ndarray) -> Any:
    import tensorflow as tf

    return tf.constant(array)


def minimal_traffic(case: Case) -> tuple[int, int, int]:
    """Bytes the loss must at least move: outputs read, targets read, and their total with
    the gradient written (float32, the size of the outputs)."""
    preds = sum(a.size for a in case.outputs) * 4
    targets = sum(a.size for a in case.y_true) * 4
    return preds, targets, 2 * preds + targets


def memory_bound(case: Case, times: dict, bandwidth: float, copy_ms: float) -> None:
    """Print the minimal traffic, the memory-bound time and each XLA time's ratio to it.

    The bound is the traffic over the best bandwidth of the 1 GiB copy at start-up. A copy of
    exactly that traffic, timed in the same interleaved rounds as the losses, shows the
    bandwidth the losses actually had (neighbours on a shared machine included); each XLA time
    is given against both.
    """
    preds, targets, total = minimal_traffic(case)
    bound = 1e3 * total / bandwidth
    mb = 1e6
    print(
        f"\nminimal traffic: head outputs {preds / mb:.1f} MB read + targets {targets / mb:.1f} MB "
        f"read + gradient {preds / mb:.1f} MB written = {total / mb:.1f} MB\n"
        f"memory-bound time: {bound:.2f} ms at {bandwidth / 1e9:.1f} GB/s (best 1 GiB copy); "
        f"{copy_ms:.2f} ms for a numpy copy of that traffic in the same rounds"
    )
    for name in case.losses:
        key = (name, "xla")
        if key in times:
            ms = common.median_ms(times[key])
            print(
                f"  {name} XLA: {ms:.1f} ms = {ms / bound:.1f}x the memory-bound time "
                f"({ms / copy_ms:.1f}x the in-round copy)"
            )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["v3", "v5"], choices=sorted(CASES))
    parser.add_argument(
        "--sizes", nargs="+", type=int, help="input sizes (default: v3 416 640, v5 640)"
    )
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--boxes", type=int, default=10, help="boxes per image")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--threads", type=int, default=2, help="TF (and torch) threads")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bandwidth-gib", type=float, default=1.0, help="numpy copy size")
    parser.add_argument("--torch-python", default="/work/venv-torch/bin/python")
    parser.add_argument("--candidate", help="file defining yolo_loss(outputs, y_true, cfg)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    common.set_threads(args.threads)
    common.print_machine(common.machine(), args.threads)
    nbytes = int(args.bandwidth_gib * (1 << 30))
    one = common.memory_bandwidth(nbytes, threads=1)
    many = common.memory_bandwidth(nbytes, threads=args.threads)
    bandwidth = max(one, many)
    print(
        f"memory bandwidth (numpy copy of {args.bandwidth_gib:g} GiB, read + write): "
        f"{one / 1e9:.1f} GB/s on 1 thread, {many / 1e9:.1f} GB/s on {args.threads}; "
        f"using {bandwidth / 1e9:.1f} GB/s"
    )
    for preset in args.presets:
        for size in args.sizes or DEFAULT_SIZES[preset]:
            try:
                case = CASES[preset](
                    size, args.batch, args.boxes, args.candidate if preset == "v3" else None
                )
                if case is not None:
                    run_case(case, args, bandwidth)
            except AssertionError:
                raise  # a failed parity check: nothing measured here would mean anything
            except Exception as error:  # one broken preset should not hide the others
                print(f"\n### {preset} {size}x{size}: failed, {type(error).__name__}: {error}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
