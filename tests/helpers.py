"""Helpers shared by the test modules: small configs, targets, head shapes, subprocess runs."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np

from kyolo.config import YoloConfig

REPO = pathlib.Path(__file__).resolve().parents[1]

NANO_ANCHORS = "6,8 10,14 16,20 24,30 34,40 48,56"
"""Six ``w,h`` pixel anchors: three per scale of the nano model (strides 16 and 8)."""


def nano_config(preset: str = "yolov3", num_classes: int = 3, size: int = 64, *overrides: str):
    """The training job's config for the nano model: ``preset`` mapped onto strides (16, 8) with
    :data:`NANO_ANCHORS`, ``max_boxes=8``, then ``overrides`` (``--set`` values)."""
    from kyolo.config import PRESETS
    from kyolo.models import STRIDES

    anchors = [[float(v) for v in pair.split(",")] for pair in NANO_ANCHORS.split()]
    cfg = PRESETS[preset].with_geometry(
        strides=STRIDES["nano"], input_size=(size, size), num_classes=num_classes, anchors=anchors
    )
    return cfg.with_overrides(["max_boxes=8", *overrides])


def random_boxes(rng: np.random.Generator, count: int, num_classes: int):
    """``count`` valid normalised ``xywh`` boxes and their class ids."""
    centre = rng.uniform(0.05, 0.95, (count, 2))
    size = rng.uniform(0.05, 0.6, (count, 2))
    boxes = np.concatenate([centre, size], axis=1).astype(np.float32)
    return boxes, rng.integers(0, num_classes, count).astype(np.int32)


def stack_targets(cfg, per_image):
    """Per scale the stacked ``y_true`` of ``[(boxes, classes), ...]``, one pair per image."""
    import tensorflow as tf

    from kyolo.encode import encode_targets

    encoded = [encode_targets(boxes, classes, cfg) for boxes, classes in per_image]
    return [tf.stack([t[s] for t in encoded]) for s in range(cfg.num_scales)]


def head_shapes(cfg, batch: int = 2):
    """Per scale the ``(batch, gh, gw, A · (5 + C))`` shape of ``cfg``'s head."""
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


TOY = YoloConfig(
    num_classes=1, input_size=(64, 64), anchors=((32, 32),), masks=((0,),), strides=(32,)
)
"""A toy head written out by hand: one class, input 64x64, stride 32 (a 2x2 grid), one 32x32
anchor (0.5 of the input). With every logit 0: σ = 0.5, decoded boxes are 0.5x0.5 at the cell
centres, and BCE(z, 0) = log 2 for any label z."""


def small(name: str):
    """Preset ``name`` with 3 classes, a 64x64 input and at most 10 boxes."""
    from kyolo.config import PRESETS

    return PRESETS[name].replace(num_classes=3, input_size=(64, 64), max_boxes=10)


def batch_targets(cfg, with_boxes=True):
    """Per scale ``(2, ...)`` targets: image 0 with two boxes (unless not ``with_boxes``), image 1
    empty."""
    boxes = np.array([[0.4, 0.5, 0.3, 0.2], [0.7, 0.3, 0.1, 0.15]], np.float32)
    classes = np.array([1, 2], np.int32)
    count = 2 if with_boxes else 0
    return stack_targets(cfg, [(boxes[:count], classes[:count]), (boxes[:0], classes[:0])])
