"""Baseline: a YOLOv5 training step in PyTorch on the CPU, served one timed step at a time.

The step is YOLOv5's own code (the ``yolov5`` pip package, v7.0): ``models.yolo.Model`` built
from one of its ``models/hub`` or ``models`` yamls (``yolov3.yaml``, ``yolov3-tiny.yaml``, ...),
``utils.loss.ComputeLoss`` with ``data/hyps/hyp.scratch-low.yaml`` and
``utils.torch_utils.smart_optimizer`` (Nesterov SGD, lr 0.01, momentum 0.937, weight decay
5e-4 on the conv weights), as ``train.py`` builds them; one step is ``train.py``'s inner loop
without the data loader::

    optimizer.zero_grad(); with autocast: loss = compute_loss(model(imgs), targets)[0]
    loss.backward(); optimizer.step()

``float32`` or ``bfloat16``: ``torch.autocast("cpu", torch.bfloat16)`` around forward and loss
(train.py's ``amp`` is CUDA-only). Runs without TensorFlow, in its own virtual environment
(torch, torchvision and yolov5's dependencies; ``BENCHMARKS.md``). ``benchmarks/train_speed.py``
starts it and interleaves its steps with kyolo's::

    python benchmarks/torch_yolov5_train.py --yaml yolov3-tiny.yaml --inputs case.npz --threads 2

stdin: one ``step PRECISION [PART]`` per line, ``PART`` ``step`` (default), ``backward`` (no
optimizer update) or ``forward`` (forward and loss only, no gradient); stdout: a JSON header
(versions, parameter count, first loss), then per line ``wall_seconds cpu_seconds loss``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import sys
import time

import numpy as np
import torch

PARTS = ("step", "backward", "forward")


def build(yaml_name: str, num_classes: int):
    """``(model, compute_loss, optimizer)`` as YOLOv5's ``train.py`` builds them from scratch."""
    import yaml
    import yolov5
    from yolov5.models.yolo import Model
    from yolov5.utils.loss import ComputeLoss
    from yolov5.utils.torch_utils import smart_optimizer

    root = pathlib.Path(yolov5.__file__).parent
    hyp = yaml.safe_load((root / "data" / "hyps" / "hyp.scratch-low.yaml").read_text())
    candidates = (root / "models" / "hub" / yaml_name, root / "models" / yaml_name)
    path = next(p for p in candidates if p.exists())
    model = Model(str(path), ch=3, nc=num_classes)
    model.nc, model.hyp = num_classes, hyp  # train.py attaches both before ComputeLoss
    model.train()
    optimizer = smart_optimizer(model, "SGD", hyp["lr0"], hyp["momentum"], hyp["weight_decay"])
    return model, ComputeLoss(model), optimizer


def make_step(model, compute_loss, optimizer, images: torch.Tensor, targets: torch.Tensor):
    """``step(precision, part) -> loss`` on the fixed batch."""

    def step(precision: str, part: str = "step") -> float:
        autocast = (
            torch.autocast("cpu", dtype=torch.bfloat16)
            if precision == "bfloat16"
            else contextlib.nullcontext()
        )
        if part == "forward":
            with torch.no_grad(), autocast:
                return float(compute_loss(model(images), targets)[0])
        optimizer.zero_grad()
        with autocast:
            loss = compute_loss(model(images), targets)[0]
        loss.backward()
        if part == "step":
            optimizer.step()
        return float(loss.detach())

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--yaml", required=True, help="a yaml of yolov5/models/hub or models/")
    parser.add_argument("--inputs", required=True, help="npz: images (b, h, w, 3), targets (n, 6)")
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = np.load(args.inputs)
    images = torch.from_numpy(np.ascontiguousarray(data["images"].transpose(0, 3, 1, 2)))
    targets = torch.from_numpy(data["targets"])
    with contextlib.redirect_stdout(sys.stderr):  # yolov5 logs its model summary
        model, compute_loss, optimizer = build(args.yaml, args.classes)
    step = make_step(model, compute_loss, optimizer, images, targets)
    import yolov5

    header = {
        "torch": torch.__version__,
        "yolov5": yolov5.__version__,
        "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "loss": step("float32", "forward"),
    }
    print(json.dumps(header), flush=True)
    for line in sys.stdin:
        words = line.split()
        if len(words) < 2 or words[0] != "step":
            break
        wall, cpu = time.perf_counter(), time.process_time()
        loss = step(words[1], words[2] if len(words) > 2 else "step")
        print(time.perf_counter() - wall, time.process_time() - cpu, loss, flush=True)


if __name__ == "__main__":
    main()
