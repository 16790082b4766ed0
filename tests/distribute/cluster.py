"""A ``MultiWorkerMirroredStrategy`` cluster of ``python -m MODULE`` processes on localhost.

Each worker gets ``TF_CONFIG`` with free ports, runs on the CPU (``CUDA_VISIBLE_DEVICES=-1``) with
one TensorFlow thread per pool (the test machine has few cores), and logs to ``logs/worker{i}.log``.
Every process still running when the block ends (a failure, a time-out) is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.helpers import REPO

CPU_ENV = {
    "CUDA_VISIBLE_DEVICES": "-1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONPATH": str(REPO),
}
"""The environment of every process of these tests, the single-process reference included."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that were free a moment ago (bound together, then released)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("localhost", 0))
        return [sock.getsockname()[1] for sock in sockets]


def tf_config(ports: Sequence[int], index: int) -> str:
    """``TF_CONFIG`` of worker ``index`` in a cluster of workers on ``ports`` (worker 0 leads)."""
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


TRAIN = "training.train"


def start(
    argv: Sequence[str], log: Path, tf_config_json: str | None = None, module: str = TRAIN
) -> subprocess.Popen:
    """``python -m module argv`` in the background, stdout and stderr into ``log``."""
    env = {**os.environ, **CPU_ENV}
    env.pop("TF_CONFIG", None)
    if tf_config_json:
        env["TF_CONFIG"] = tf_config_json
    with open(log, "w") as stream:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", module, *argv],
            cwd=REPO,
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
        )


@contextlib.contextmanager
def cluster(
    argv: Sequence[str], workers: int, logs: Path, module: str = TRAIN
) -> Iterator[list[subprocess.Popen]]:
    """Start ``workers`` processes of one cluster; kill the ones left running on exit."""
    logs.mkdir(parents=True, exist_ok=True)
    ports = free_ports(workers)
    processes: list[subprocess.Popen] = []
    try:
        for index in range(workers):
            config = tf_config(ports, index)
            processes.append(start(argv, logs / f"worker{index}.log", config, module))
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()


def wait(processes: Sequence[subprocess.Popen], timeout: float) -> list[int]:
    """Exit statuses, waiting at most ``timeout`` s for all (``TimeoutExpired`` after that)."""
    deadline = time.monotonic() + timeout
    return [process.wait(max(0.0, deadline - time.monotonic())) for process in processes]


def run(
    argv: Sequence[str], workers: int, logs: Path, timeout: float, module: str = TRAIN
) -> list[int]:
    """Run a cluster to its end; the exit status of each worker."""
    with cluster(argv, workers, logs, module) as processes:
        return wait(processes, timeout)


def run_single(argv: Sequence[str], log: Path, timeout: float, module: str = TRAIN) -> int:
    """One process, no ``TF_CONFIG``, same environment as the workers."""
    log.parent.mkdir(parents=True, exist_ok=True)
    process = start(argv, log, module=module)
    try:
        return process.wait(timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
