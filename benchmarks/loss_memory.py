"""Peak memory of the v3 loss, forward + backward, against batch size and boxes per image.

Each (configuration, implementation) runs in a fresh subprocess: build the inputs, call the
compiled step once (tracing, XLA compilation), reset TensorFlow's CPU allocator statistics, call
the step again and read the allocator's peak (``tf.config.experimental.get_memory_info``, which
the default oneDNN CPU allocator supports). Peak minus the bytes in use before the call is what
one step adds on top of its inputs: every temporary and the gradient it returns. Where the
allocator keeps no statistics (``TF_ENABLE_ONEDNN_OPTS=0``) the worker falls back to the
kernel's peak resident set (``VmHWM`` after ``/proc/self/clear_refs``), which misses memory the
allocator pooled during the first call and so is only a lower bound.

Run from the repository root::

    .venv/bin/python -m benchmarks.loss_memory                 # ~2 min
    .venv/bin/python -m benchmarks.loss_memory --configs 16x10 32x10 --candidate /tmp/x.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from benchmarks import common

IMPLS = ["kyolo:xla", "kyolo:graph", "naive port:graph"]


def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def worker(args: argparse.Namespace) -> None:
    """Measure one implementation on one configuration; print a JSON line."""
    common.set_threads(args.threads)
    import gc

    import tensorflow as tf

    from benchmarks import loss_speed as ls

    name, mode = args.impl.split(":")
    case = ls.v3_case(
        args.size, args.batch, args.boxes, args.candidate, max(100, args.boxes), check=False
    )
    outputs = [tf.constant(a) for a in case.outputs]
    y_true = [tf.constant(a) for a in case.y_true]
    step = ls.compiled(case.losses[name], mode)
    common.block(step(outputs, y_true))
    gc.collect()
    inputs = sum(a.nbytes for a in case.outputs) + sum(a.nbytes for a in case.y_true)
    grad = sum(a.nbytes for a in case.outputs)
    try:
        tf.config.experimental.reset_memory_stats("CPU:0")
        before = tf.config.experimental.get_memory_info("CPU:0")["current"]
        source = "allocator"
    except ValueError:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        before = 1024 * status_kib("VmRSS")
        source = "rss"
    result = step(outputs, y_true)
    common.block(result)
    if source == "allocator":
        peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    else:
        peak = 1024 * status_kib("VmHWM")
    mb = 2**20
    record = {"peak_mb": (peak - before) / mb, "inputs_mb": inputs / mb, "grad_mb": grad / mb}
    print(json.dumps({**record, "source": source}))


def run_one(args: argparse.Namespace, batch: int, boxes: int, impl: str) -> dict:
    command = [sys.executable, "-m", "benchmarks.loss_memory", "--worker", "--impl", impl]
    command += ["--batch", str(batch), "--boxes", str(boxes), "--size", str(args.size)]
    command += ["--threads", str(args.threads)]
    if args.candidate:
        command += ["--candidate", args.candidate]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": last[:80]}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["1x10", "8x10", "16x10", "16x100", "16x300"],
        help="BATCHxBOXES per image",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2, help="subprocesses run at once")
    parser.add_argument("--candidate", help="file defining yolo_loss(outputs, y_true, cfg)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--boxes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    common.set_threads(args.threads)
    common.print_machine(common.machine(), args.threads)
    impls = IMPLS + (["candidate:xla"] if args.candidate else [])
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs]
    jobs = [(b, n, impl) for b, n in configs for impl in impls]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda job: run_one(args, *job), jobs))
    found = dict(zip(jobs, results, strict=True))
    rows = []
    for b, n in configs:
        first = next((found[(b, n, i)] for i in impls if "inputs_mb" in found[(b, n, i)]), {})
        row = [str(b), str(n), f"{first.get('inputs_mb', 0):.0f}", f"{first.get('grad_mb', 0):.0f}"]
        for impl in impls:
            r = found[(b, n, impl)]
            row.append(f"{r['peak_mb']:.0f}" if "peak_mb" in r else f"failed: {r['error']}")
        rows.append(row)
    headers = ["batch", "boxes/image", "inputs MB", "gradient MB"]
    headers += [f"{i.replace(':', ' ')} peak MB" for i in impls]
    sources = sorted({r["source"] for r in results if "source" in r})
    print(f"\n### Peak memory added by one loss step, forward + backward, {args.size}x{args.size}")
    print(f"(measured by: {', '.join(sources)}; MB = 2^20 bytes)\n")
    print(common.table(headers, rows))


if __name__ == "__main__":
    main()
