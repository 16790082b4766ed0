"""Shared pieces of the benchmark scripts: threads, machine facts, inputs, timing, tables.

Every script measures candidates *interleaved* (one call of each per round, the order rotated each
round) and reports the median, so that drift on a shared machine hits all candidates alike.
Import this module before anything else touches TensorFlow: :func:`set_threads` must run first.
"""

from __future__ import annotations

import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# Keep TensorFlow's C++ log (oneDNN banners, Grappler's harmless "layout failed", the expected XLA
# failure of the naive port) off the tables; errors still raise. TF_CPP_MIN_LOG_LEVEL=0 shows it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def set_threads(threads: int) -> None:
    """Pin TensorFlow's intra- and inter-op pools to ``threads`` (call before any TF op)."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notices: every case is traced on purpose
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def machine() -> dict[str, Any]:
    """nproc, CPU model, TF/Keras versions and the load average, for the report header."""
    import keras
    import tensorflow as tf

    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        model = names[0] if names else model
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "loadavg": os.getloadavg(),
    }


def print_machine(info: dict[str, Any], threads: int) -> None:
    load = ", ".join(f"{x:.2f}" for x in info["loadavg"])
    print(
        f"machine: nproc={info['nproc']}  cpu={info['cpu']}  tensorflow={info['tensorflow']}  "
        f"keras={info['keras']}  threads={threads}  loadavg(1,5,15 min)={load}"
    )


def random_boxes(
    rng: np.random.Generator, count: int, rows: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` COCO-like boxes padded to ``rows``: ``(rows, 4)`` normalised xywh, ``(rows,)``.

    Centres uniform in the image, width and height log-uniform in [2 %, 60 %] of the image
    (small and large objects alike); padding rows are zero (``w = 0``).
    """
    boxes = np.zeros((rows, 4), np.float32)
    classes = np.zeros((rows,), np.int32)
    boxes[:count, :2] = rng.uniform(0.01, 0.99, (count, 2))
    boxes[:count, 2:] = np.exp(rng.uniform(np.log(0.02), np.log(0.6), (count, 2)))
    classes[:count] = rng.integers(0, num_classes, count)
    return boxes, classes


def image_encoder(cfg: Any) -> Callable:
    """kyolo's per-image target encoder for ``cfg``."""
    from kyolo.encode import encode_targets

    return lambda boxes, classes: encode_targets(boxes, classes, cfg)


def encoded_batch(
    cfg: Any, batch: int, boxes_per_image: int, seed: int = 0
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """A batch of random boxes and their per-scale ``y_true`` from kyolo's encoder.

    Returns:
        ``y_true`` (one float32 array per scale), ``boxes (b, max_boxes, 4)``,
        ``classes (b, max_boxes)``.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    pairs = [
        random_boxes(rng, boxes_per_image, cfg.max_boxes, cfg.num_classes) for _ in range(batch)
    ]
    boxes = np.stack([p[0] for p in pairs])
    classes = np.stack([p[1] for p in pairs])
    encode = tf.function(image_encoder(cfg))
    per_image = [encode(b, c) for b, c in zip(boxes, classes, strict=True)]
    y_true = [np.stack([t[s].numpy() for t in per_image]) for s in range(cfg.num_scales)]
    return y_true, boxes, classes


def head_outputs(cfg: Any, batch: int, seed: int = 1, std: float = 1.0) -> list[np.ndarray]:
    """Random raw head outputs ``(b, gh, gw, A * (5 + C))`` per scale, N(0, std²) logits."""
    rng = np.random.default_rng(seed)
    depth = cfg.anchors_per_scale * (5 + cfg.num_classes)
    return [
        (std * rng.standard_normal((batch, *cfg.grid_size(s), depth))).astype(np.float32)
        for s in range(cfg.num_scales)
    ]


def interleaved(
    candidates: dict[str, Callable[[], Any]], warmup: int, repeats: int
) -> dict[str, list[float]]:
    """Seconds per call of each candidate: ``warmup`` untimed calls, then ``repeats`` rounds.

    Each round calls every candidate once, in an order rotated by one each round, so slow drift
    and a neighbour's bursts spread over all of them. A candidate's result is converted to numpy
    (``block``) inside the timed region.
    """
    names = list(candidates)
    for name in names:
        for _ in range(warmup):
            block(candidates[name]())
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            block(candidates[name]())
            times[name].append(time.perf_counter() - start)
    return times


def block(result: Any) -> None:
    """Wait for ``result``: materialise its first tensor (TF on CPU runs synchronously)."""
    first = result[0] if isinstance(result, tuple | list) else result
    if hasattr(first, "numpy"):
        first.numpy()


def cpu_timed(fn: Callable[[], Any], seconds: list[float]) -> Callable[[], Any]:
    """``fn`` that appends each call's process CPU time (result materialised) to ``seconds``."""

    def call() -> Any:
        start = time.process_time()
        result = fn()
        block(result)
        seconds.append(time.process_time() - start)
        return result

    return call


def median_ms(times: Sequence[float]) -> float:
    return 1e3 * statistics.median(times)


def spread(times: Sequence[float]) -> str:
    """Inter-quartile range relative to the median, e.g. ``±4%``: how noisy the run was."""
    if len(times) < 4:
        return ""
    q = statistics.quantiles(times, n=4)
    return f"±{50 * (q[2] - q[0]) / statistics.median(times):.0f}%"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (also readable as plain text)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


class Copier:
    """``np.copyto`` of ``nbytes`` split over ``threads`` threads: ``2 * nbytes`` of traffic.

    numpy releases the GIL in the copy loop, so the slices are copied concurrently. Calling the
    object copies once; as a candidate of :func:`interleaved` it measures the bandwidth
    available in the very rounds the other candidates run in.
    """

    def __init__(self, nbytes: int, threads: int = 1) -> None:
        self.src = np.ones(max(1, nbytes // 4), np.float32)
        self.dst = np.empty_like(self.src)
        self.bounds = np.linspace(0, self.src.size, threads + 1).astype(int)
        self()  # touch every page once

    def _copy(self, i: int) -> None:
        lo, hi = self.bounds[i], self.bounds[i + 1]
        np.copyto(self.dst[lo:hi], self.src[lo:hi])

    def __call__(self) -> None:
        workers = [
            threading.Thread(target=self._copy, args=(i,)) for i in range(len(self.bounds) - 1)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    @property
    def traffic(self) -> int:
        return 2 * self.src.nbytes


def memory_bandwidth(nbytes: int = 1 << 30, threads: int = 1, repeats: int = 5) -> float:
    """Bytes per second moved by :class:`Copier` (read + write counted), best of ``repeats``.

    The best run is the machine's attainable bandwidth, which is what a memory-bound time
    should be measured against.
    """
    copier = Copier(nbytes, threads)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        copier()
        best = min(best, time.perf_counter() - start)
    return copier.traffic / best


def yolov5_rows(boxes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Padded per-image boxes → YOLOv5's ``(n, 6)`` target rows ``image, class, x, y, w, h``.

    Args:
        boxes: ``(b, rows, 4)`` normalised ``xywh``, padding rows with ``w = 0``;
            ``classes``: ``(b, rows)``.
    """
    image, row = np.nonzero(boxes[..., 2] > 0)
    return np.concatenate(
        [image[:, None], classes[image, row][:, None], boxes[image, row]], axis=1
    ).astype(np.float32)


class Server:
    """A baseline in another process (e.g. a torch virtual environment), one request per line.

    The process prints a JSON header line, then answers each line written to its stdin with one
    line. As a candidate of :func:`interleaved` (through a ``lambda: server(request)``) it shares
    the rounds, and a neighbour's bursts, with the candidates of this process; it waits idle
    between its requests (``omp_wait_policy="PASSIVE"``: no OpenMP threads spinning into the next
    candidate's time; None leaves ``OMP_WAIT_POLICY`` unset: libgomp spins briefly, then sleeps).

    Raises:
        RuntimeError: the process exited before its header (its stderr is not captured).
    """

    def __init__(self, command: Sequence[str], omp_wait_policy: str | None = "PASSIVE") -> None:
        import json
        import subprocess

        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if omp_wait_policy is not None:
            env["OMP_WAIT_POLICY"] = omp_wait_policy
        self.process = subprocess.Popen(
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        line = self.process.stdout.readline()
        if not line:
            self.close()
            raise RuntimeError(f"{command[0]} {command[1]} exited before its header")
        self.header = json.loads(line)

    def __call__(self, request: str) -> str:
        self.process.stdin.write(request + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"the server exited on {request!r}")
        return answer

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=60)
