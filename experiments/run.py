"""Loss-design comparisons on DigitsDet: ``python -m experiments.run`` (resumable), then
``python -m experiments.report`` writes ``docs/experiments.md`` and its plots.

Every run is one ``python -m training.train`` invocation with the same data, model, epochs and
seeds; only the preset and ``--set`` overrides differ. Results land in ``experiments/results/``
(one ``metrics.json`` per run, committed); checkpoints go to ``runs/experiments/`` (ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

# name → (preset, overrides). Grouped as the study asks: box loss, objectness target, anchor
# assignment (± pos_weight), presets and focal loss.
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "v3": ("yolov3", []),
    "box-mse": ("yolov3", ["loss.box_loss=mse"]),
    "box-iou": ("yolov3", ["loss.box_loss=iou"]),
    "box-ciou": ("yolov3", ["loss.box_loss=ciou"]),
    "obj-iou": ("yolov3", ["loss.obj_target=iou"]),
    "anchor-per-scale": ("yolov3", ["assigner=best_anchor_per_scale"]),
    "pos-weight": ("yolov3", ["loss.obj_pos_weight=auto"]),
    "anchor-per-scale+pos-weight": (
        "yolov3",
        ["assigner=best_anchor_per_scale", "loss.obj_pos_weight=auto"],
    ),
    "focal": ("yolov3", ["loss.focal_gamma=2"]),  # on objectness and classes
    "v4": ("yolov4", []),
    "v5": ("yolov5", []),
}
SEEDS = (0, 1)
# The shared budget: small enough for a 2-core CPU, long enough for the curves to separate.
BUDGET = ["--digits", "500", "100", "--epochs", "16", "--eval-every", "2", "--img-size", "128"]
HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def run(name: str, seed: int, scratch: str) -> dict:
    preset, overrides = VARIANTS[name]
    out = os.path.join(scratch, name, f"seed{seed}")
    shutil.rmtree(out, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "training.train",
        *BUDGET,
        "--seed",
        str(seed),
        "--loss-preset",
        preset,
        "--data-dir",
        os.path.join(scratch, "digitsdet"),
        "--out",
        out,
    ]
    for item in overrides:
        command += ["--set", item]
    started = time.time()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    metrics["command"] = " ".join(command[1:])
    metrics["process_wall_s"] = round(time.time() - started, 1)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the loss comparisons (skips finished runs).")
    parser.add_argument("--only", nargs="*", choices=sorted(VARIANTS), help="subset of variants")
    parser.add_argument("--scratch", default=os.path.join("runs", "experiments"))
    args = parser.parse_args()
    os.makedirs(RESULTS, exist_ok=True)
    for seed in SEEDS:  # seed-major: after one pass every variant has a result
        for name in args.only or VARIANTS:
            target = os.path.join(RESULTS, f"{name}__seed{seed}.json")
            if os.path.exists(target):
                continue
            metrics = run(name, seed, args.scratch)
            with open(target, "w") as f:
                json.dump(metrics, f, indent=1)
            print(
                f"{name} seed {seed}: mAP50 {metrics['val_mAP50']:.3f} "
                f"({metrics['process_wall_s']:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
