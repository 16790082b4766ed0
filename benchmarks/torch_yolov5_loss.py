"""Baseline: YOLOv5's ``ComputeLoss`` in PyTorch on the CPU, timed forward + backward.

The ``yolov5`` pip package does not import without its heavy dependencies (OpenCV, matplotlib,
pandas, ...), so this is a minimal port of ultralytics/yolov5 ``utils/loss.py`` (v7.0:
``ComputeLoss.__call__`` and ``build_targets``, ``sort_obj_iou = False``, ``gr = 1.0``, no
autobalance) and ``utils/metrics.py`` ``bbox_iou(..., CIoU=True)``, line for line, with the model
replaced by its anchors. ``--check`` asserts it agrees with the project's independent NumPy
reference ``references/yolov5_np.py``.

Runs with torch and numpy only (no TensorFlow), so it can live in another virtual environment;
``benchmarks/loss_speed.py`` starts it as a subprocess::

    python benchmarks/torch_yolov5_loss.py --inputs case.npz --out result.json --threads 2
    python benchmarks/torch_yolov5_loss.py --inputs case.npz --serve   # one step per stdin line
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import pathlib
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

HYP = {  # data/hyps/hyp.scratch-low.yaml
    "box": 0.05,
    "cls": 0.5,
    "cls_pw": 1.0,
    "obj": 1.0,
    "obj_pw": 1.0,
    "anchor_t": 4.0,
    "fl_gamma": 0.0,
    "label_smoothing": 0.0,
}
ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
STRIDES = [8, 16, 32]


def bbox_ciou(box1: torch.Tensor, box2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``bbox_iou(box1, box2, xywh=True, CIoU=True)`` of yolov5 v7.0."""
    (x1, y1, w1, h1), (x2, y2, w2, h2) = box1.chunk(4, -1), box2.chunk(4, -1)
    w1_, h1_, w2_, h2_ = w1 / 2, h1 / 2, w2 / 2, h2 / 2
    b1_x1, b1_x2, b1_y1, b1_y2 = x1 - w1_, x1 + w1_, y1 - h1_, y1 + h1_
    b2_x1, b2_x2, b2_y1, b2_y2 = x2 - w2_, x2 + w2_, y2 - h2_, y2 + h2_
    inter = (b1_x2.minimum(b2_x2) - b1_x1.maximum(b2_x1)).clamp(0) * (
        b1_y2.minimum(b2_y2) - b1_y1.maximum(b2_y1)
    ).clamp(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = b1_x2.maximum(b2_x2) - b1_x1.minimum(b2_x1)
    ch = b1_y2.maximum(b2_y2) - b1_y1.minimum(b2_y1)
    c2 = cw**2 + ch**2 + eps
    rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2) ** 2 + (b2_y1 + b2_y2 - b1_y1 - b1_y2) ** 2) / 4
    v = (4 / math.pi**2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


class ComputeLoss:
    """yolov5 ``utils/loss.py`` ``ComputeLoss`` for a 3-level ``Detect`` head (BCE, no focal)."""

    def __init__(self, anchors_px: np.ndarray, strides: list[int], nc: int, hyp: dict) -> None:
        self.hyp = hyp
        self.BCEcls = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([hyp["cls_pw"]]))
        self.BCEobj = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([hyp["obj_pw"]]))
        eps = hyp.get("label_smoothing", 0.0)
        self.cp, self.cn = 1.0 - 0.5 * eps, 0.5 * eps
        self.balance = [4.0, 1.0, 0.4]
        self.gr = 1.0
        # Model.__init__ divides Detect.anchors by the strides: anchors in grid units.
        anchors = torch.tensor(anchors_px, dtype=torch.float32).view(len(strides), -1, 2)
        self.anchors = anchors / torch.tensor(strides, dtype=torch.float32).view(-1, 1, 1)
        self.na, self.nl, self.nc = self.anchors.shape[1], len(strides), nc

    def __call__(self, p: list[torch.Tensor], targets: torch.Tensor):
        lcls, lbox, lobj = torch.zeros(1), torch.zeros(1), torch.zeros(1)
        tcls, tbox, indices, anchors = self.build_targets(p, targets)
        for i, pi in enumerate(p):
            b, a, gj, gi = indices[i]
            tobj = torch.zeros(pi.shape[:4], dtype=pi.dtype)
            n = b.shape[0]
            if n:
                pxy, pwh, _, pcls = pi[b, a, gj, gi].split((2, 2, 1, self.nc), 1)
                pxy = pxy.sigmoid() * 2 - 0.5
                pwh = (pwh.sigmoid() * 2) ** 2 * anchors[i]
                pbox = torch.cat((pxy, pwh), 1)
                iou = bbox_ciou(pbox, tbox[i]).squeeze()
                lbox += (1.0 - iou).mean()
                iou = iou.detach().clamp(0).type(tobj.dtype)
                if self.gr < 1:
                    iou = (1.0 - self.gr) + self.gr * iou
                tobj[b, a, gj, gi] = iou
                if self.nc > 1:
                    t = torch.full_like(pcls, self.cn)
                    t[range(n), tcls[i]] = self.cp
                    lcls += self.BCEcls(pcls, t)
            obji = self.BCEobj(pi[..., 4], tobj)
            lobj += obji * self.balance[i]
        lbox *= self.hyp["box"]
        lobj *= self.hyp["obj"]
        lcls *= self.hyp["cls"]
        bs = tobj.shape[0]
        return (lbox + lobj + lcls) * bs, torch.cat((lbox, lobj, lcls)).detach()

    def build_targets(self, p: list[torch.Tensor], targets: torch.Tensor):
        na, nt = self.na, targets.shape[0]
        tcls, tbox, indices, anch = [], [], [], []
        gain = torch.ones(7)
        ai = torch.arange(na).float().view(na, 1).repeat(1, nt)
        targets = torch.cat((targets.repeat(na, 1, 1), ai[..., None]), 2)
        g = 0.5
        off = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]]).float() * g
        for i in range(self.nl):
            anchors, shape = self.anchors[i], p[i].shape
            gain[2:6] = torch.tensor(shape)[[3, 2, 3, 2]]
            t = targets * gain
            if nt:
                r = t[..., 4:6] / anchors[:, None]
                j = torch.max(r, 1 / r).max(2)[0] < self.hyp["anchor_t"]
                t = t[j]
                gxy = t[:, 2:4]
                gxi = gain[[2, 3]] - gxy
                j, k = ((gxy % 1 < g) & (gxy > 1)).T
                l, m = ((gxi % 1 < g) & (gxi > 1)).T  # noqa: E741 - yolov5's names
                j = torch.stack((torch.ones_like(j), j, k, l, m))
                t = t.repeat((5, 1, 1))[j]
                offsets = (torch.zeros_like(gxy)[None] + off[:, None])[j]
            else:
                t = targets[0]
                offsets = 0
            bc, gxy, gwh, a = t.chunk(4, 1)
            a, (b, c) = a.long().view(-1), bc.long().T
            gij = (gxy - offsets).long()
            gi, gj = gij.T
            indices.append((b, a, gj.clamp_(0, shape[2] - 1), gi.clamp_(0, shape[3] - 1)))
            tbox.append(torch.cat((gxy - gij, gwh), 1))
            anch.append(anchors[a])
            tcls.append(c)
        return tcls, tbox, indices, anch


def check_against_numpy_reference(seed: int = 0) -> tuple[float, float]:
    """Assert the port matches ``references/yolov5_np.py`` on a small case; return both."""
    path = pathlib.Path(__file__).resolve().parents[1] / "references" / "yolov5_np.py"
    spec = importlib.util.spec_from_file_location("yolov5_np", path)
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    rng = np.random.default_rng(seed)
    nc, b, size = 7, 3, 128
    p = [rng.normal(0, 1.5, (b, 3, size // s, size // s, 5 + nc)) for s in STRIDES]
    n = 9
    targets = np.stack(
        [
            rng.integers(0, b, n),
            rng.integers(0, nc, n),
            rng.uniform(0.05, 0.95, n),
            rng.uniform(0.05, 0.95, n),
            rng.uniform(0.03, 0.6, n),
            rng.uniform(0.03, 0.6, n),
        ],
        axis=1,
    )
    anchors = np.asarray(ANCHORS, np.float64).reshape(3, 3, 2)
    want = float(ref.compute_loss(p, targets, anchors, STRIDES, HYP)[0])
    loss = ComputeLoss(anchors, STRIDES, nc, HYP)
    got = float(
        loss([torch.tensor(x, dtype=torch.float32) for x in p], torch.tensor(targets).float())[0]
    )
    if not abs(got - want) <= 1e-4 * abs(want):
        raise AssertionError(f"torch port {got!r} != numpy reference {want!r}")
    return got, want


def make_step(path: str, threads: int):
    """A forward + backward closure of ``ComputeLoss`` on the arrays in ``path`` → loss value."""
    torch.set_num_threads(threads)
    data = np.load(path)
    p = [torch.tensor(data[f"p{i}"], requires_grad=True) for i in range(len(STRIDES))]
    targets = torch.tensor(data["targets"])
    nc = p[0].shape[-1] - 5
    loss_fn = ComputeLoss(np.asarray(ANCHORS, np.float32), STRIDES, nc, HYP)

    def step() -> float:
        for x in p:
            x.grad = None
        loss = loss_fn(p, targets)[0]
        loss.backward()
        return float(loss.detach())

    return step


def time_case(path: str, threads: int, warmup: int, repeats: int) -> dict:
    """Time ``repeats`` steps after ``warmup``; times in seconds."""
    step = make_step(path, threads)
    value = step()
    for _ in range(warmup - 1):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {
        "times": times,
        "median": statistics.median(times),
        "loss": value,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def serve(path: str, threads: int, check: bool) -> None:
    """Answer each ``step`` line on stdin with one timed step (seconds) on stdout.

    Lets the caller interleave this baseline with its own candidates, round by round; the first
    line out is a JSON header (loss value, versions, parity check).
    """
    header = {"torch": torch.__version__, "threads": threads}
    if check:
        header["check"] = check_against_numpy_reference()
    step = make_step(path, threads)
    header["loss"] = step()
    print(json.dumps(header), flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        start = time.perf_counter()
        step()
        print(time.perf_counter() - start, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", help="npz with p0, p1, p2 (b, 3, ny, nx, 5+C) and targets")
    parser.add_argument("--out", help="where to write the JSON result")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--check", action="store_true", help="parity with the NumPy reference")
    parser.add_argument("--serve", action="store_true", help="time one step per stdin line")
    args = parser.parse_args()
    if args.serve:
        serve(args.inputs, args.threads, args.check)
        return
    result = {}
    if args.check:
        result["check"] = check_against_numpy_reference()
    if args.inputs:
        result.update(time_case(args.inputs, args.threads, args.warmup, args.repeats))
    text = json.dumps(result)
    if args.out:
        pathlib.Path(args.out).write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
