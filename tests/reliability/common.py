"""Shared helpers of the reliability suite: small configs, targets and subprocess runs."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]

NANO_ANCHORS = "6,8 10,14 16,20 24,30 34,40 48,56"
"""Six ``w,h`` pixel anchors: three per scale of the nano model (strides 16 and 8)."""


def nano_config(preset: str = "yolov3", num_classes: int = 3, size: int = 64, *overrides: str):
    """The training CLI's config for the nano model: ``preset`` mapped onto strides (16, 8).

    ``overrides`` are ``--set`` values such as ``"max_boxes=8"``.
    """
    from training import train as train_job

    sets = [arg for item in ("max_boxes=8", *overrides) for arg in ("--set", item)]
    argv = ["--loss-preset", preset, "--anchors", NANO_ANCHORS, "--img-size", str(size), *sets]
    return train_job.build_config(train_job.parse_args(argv), [], num_classes)


def random_boxes(rng: np.random.Generator, count: int, num_classes: int):
    """``count`` valid normalised ``xywh`` boxes and their class ids."""
    centre = rng.uniform(0.05, 0.95, (count, 2))
    size = rng.uniform(0.05, 0.6, (count, 2))
    boxes = np.concatenate([centre, size], axis=1).astype(np.float32)
    return boxes, rng.integers(0, num_classes, count).astype(np.int32)


def encode_batch(cfg, per_image):
    """Per scale the stacked ``y_true`` of ``[(boxes, classes), ...]``, one pair per image."""
    import tensorflow as tf

    from kyolo.encode import encode_targets

    encoded = [encode_targets(boxes, classes, cfg) for boxes, classes in per_image]
    return [tf.stack([t[s] for t in encoded]) for s in range(cfg.num_scales)]


def head_shapes(cfg, batch: int):
    depth = cfg.anchors_per_scale * (5 + cfg.num_classes)
    return [(batch, *cfg.grid_size(s), depth) for s in range(cfg.num_scales)]


def run_module(module: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m module args`` from the repository root; output captured as text."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
