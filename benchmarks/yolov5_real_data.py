"""Peer on real data: ultralytics YOLOv5n trained from scratch on NeonTrees by its own ``train.py``.

The numbers ``docs/real-data.md`` sets beside kyolo's. YOLOv5 runs in its own virtual environment
(never a kyolo dependency), e.g.::

    python3 -m venv /work/venv-yolov5
    /work/venv-yolov5/bin/pip install torch==2.14.1 torchvision==0.29.1 yolov5==7.0.14 \
        "setuptools<81" "numpy<2.4"   # YOLOv5 7.0 imports pkg_resources and calls np.trapz

    python -m benchmarks.yolov5_real_data --data runs/neon_trees \\
        --python /work/venv-yolov5/bin/python --epochs 30 --img 256 --seeds 0 1 --out /tmp/y5

Per seed it

1. writes NeonTrees (kyolo's COCO json split) in YOLOv5's layout once: ``images/{train,val}``
   (symlinks) beside ``labels/{train,val}/*.txt`` (``class cx cy w h`` normalised), and
   ``data.yaml``; the labels are read back with :func:`kyolo.data.read_yolo` and must equal the
   COCO boxes to 1e-3 px;
2. runs ``python -m yolov5.train --cfg yolov5n.yaml --weights ''`` (from scratch; YOLOv5's defaults
   otherwise: ``hyp.scratch-low.yaml``, SGD, mosaic 1.0, AutoAnchor, EMA, batch 16) on the CPU;
3. runs ``python -m yolov5.val`` on ``last.pt`` (kyolo reports its last epoch too) with
   ``--save-json``, one image per batch (see ``train_and_score``), and scores that json with
   :func:`kyolo.evaluate.coco_map` (pycocotools, the evaluator of kyolo's own runs), beside
   YOLOv5's own mAP of its last epoch (``results.csv``, whose validation runs at batch 32 and
   may hit the NMS time limit on a loaded CPU).

It prints one table row per seed. Wall times include YOLOv5's per-epoch validation. ``--reuse``
scores runs already trained under ``--out`` again (their training time is kept).
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence

import numpy as np

from kyolo.data import read_annotations, read_yolo
from kyolo.data.annotations import Annotation
from kyolo.evaluate import coco_map

SPLITS = ("train", "val")


def yolo_lines(annotation: Annotation) -> str:
    """YOLO txt rows ``class cx cy w h`` of one image, normalised by its width and height."""
    w, h = annotation.width, annotation.height
    rows = []
    boxes = annotation.boxes.astype(np.float64)
    for (x0, y0, x1, y1), c in zip(boxes, annotation.classes, strict=True):
        cx, cy, bw, bh = (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h
        rows.append(f"{c} {cx:.8f} {cy:.8f} {bw:.8f} {bh:.8f}")
    return "".join(row + "\n" for row in rows)


def write_yolo_layout(data: str, out: str) -> tuple[dict[str, list[Annotation]], list[str]]:
    """NeonTrees' COCO split under ``data`` → YOLOv5's layout and ``data.yaml`` under ``out``.

    Returns:
        the annotations per split (as kyolo reads them) and the class names.
    """
    splits, names = {}, None
    for split in SPLITS:
        images = os.path.join(data, "images", split)
        annotations, names = read_annotations(
            "coco", os.path.join(data, "annotations", f"{split}.json"), images, names
        )
        image_dir = os.path.join(out, "images", split)
        label_dir = os.path.join(out, "labels", split)
        os.makedirs(image_dir, exist_ok=True)
        os.makedirs(label_dir, exist_ok=True)
        for ann in annotations:
            name = os.path.basename(ann.image_path)
            link = os.path.join(image_dir, name)
            if not os.path.lexists(link):
                os.symlink(os.path.abspath(ann.image_path), link)
            with open(os.path.join(label_dir, os.path.splitext(name)[0] + ".txt"), "w") as f:
                f.write(yolo_lines(ann))
        # Rounding of the normalised numbers may put an edge box 1e-7 px outside the image.
        again = read_yolo(image_dir, label_dir, len(names), on_invalid="clip")
        for want, got in zip(annotations, again, strict=True):
            np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)
            np.testing.assert_array_equal(got.classes, want.classes)
        splits[split] = annotations
    with open(os.path.join(out, "data.yaml"), "w") as f:
        f.write(f"path: {os.path.abspath(out)}\ntrain: images/train\nval: images/val\n")
        f.write(f"nc: {len(names)}\nnames: {json.dumps(names)}\n")
    return splits, names


def peer_env(out: str) -> dict[str, str]:
    """Environment for YOLOv5 7.0 offline and on torch >= 2.6.

    Its settings folder under ``out`` holds matplotlib's DejaVu Sans as the ``Arial.ttf`` YOLOv5
    otherwise downloads (plot labels only). ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` restores
    ``torch.load``'s pre-2.6 default, which YOLOv5 7.0 needs to read back its own checkpoints
    (written in this run, so trusted).
    """
    import matplotlib

    folder = os.path.abspath(os.path.join(out, "yolov5_config"))
    os.makedirs(folder, exist_ok=True)
    font = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")
    shutil.copyfile(font, os.path.join(folder, "Arial.ttf"))
    return {**os.environ, "YOLOV5_CONFIG_DIR": folder, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}


def run(command: Sequence[str], log: str, env: dict[str, str]) -> float:
    """Run ``command`` with its output in ``log``; returns its wall time in seconds."""
    started = time.time()
    with open(log, "w") as f:
        done = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}); see {log}")
    return time.time() - started


def last_epoch(results_csv: str) -> dict[str, float]:
    """YOLOv5's own metrics of its last epoch from ``results.csv`` (columns are space-padded)."""
    with open(results_csv, newline="") as f:
        rows = [{k.strip(): float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return {"mAP50": rows[-1]["metrics/mAP_0.5"], "mAP50_95": rows[-1]["metrics/mAP_0.5:0.95"]}


def score_json(path: str, annotations: list[Annotation], num_classes: int) -> dict[str, float]:
    """pycocotools mAP (:func:`kyolo.evaluate.coco_map`) of YOLOv5's ``--save-json`` detections.

    YOLOv5 names each image by its file stem and writes ``[x, y, w, h]`` boxes in image pixels
    with 0-based class ids (not a COCO dataset, so no 80 → 91 id map).
    """
    with open(path) as f:
        found = json.load(f)
    by_image: dict[str, list] = {}
    for d in found:
        by_image.setdefault(str(d["image_id"]), []).append(d)
    truths, detections = [], []
    for ann in annotations:
        rows = by_image.get(os.path.splitext(os.path.basename(ann.image_path))[0], [])
        boxes = np.array([d["bbox"] for d in rows], np.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        scores = np.array([d["score"] for d in rows], np.float64)
        classes = np.array([d["category_id"] for d in rows], np.int64)
        truths.append((ann.boxes, ann.classes))
        detections.append((boxes, scores, classes))
    return coco_map(truths, detections, num_classes)


NMS_LIMIT = "NMS time limit"
"""YOLOv5's warning when ``non_max_suppression`` ran out of its time budget and returned the
detections of the images done so far (the rest get none)."""


def train_and_score(args: argparse.Namespace, seed: int, splits: dict, names: list[str]) -> dict:
    env = peer_env(args.out)
    name = f"yolov5n_b{args.batch_size}_e{args.epochs}_s{seed}"
    project = os.path.abspath(os.path.join(args.out, "runs"))
    folder = os.path.join(project, name)
    timing = os.path.join(folder, "train_seconds.txt")
    if not (args.reuse and os.path.exists(timing)):
        train_s = run(
            [
                args.python, "-m", "yolov5.train",
                "--data", os.path.join(args.out, "data.yaml"),
                "--cfg", "yolov5n.yaml", "--weights", "",
                "--img", str(args.img), "--epochs", str(args.epochs),
                "--batch-size", str(args.batch_size), "--seed", str(seed),
                "--device", "cpu", "--workers", str(args.workers),
                "--project", project, "--name", name, "--exist-ok", "--noplots",
            ],
            os.path.join(args.out, f"{name}.train.log"),
            env,
        )  # fmt: skip
        with open(timing, "w") as f:
            f.write(f"{train_s:.1f}\n")
    with open(timing) as f:
        train_s = float(f.read())
    val_name = f"{name}_val"
    val_log = os.path.join(args.out, f"{val_name}.log")
    # One image per batch: NMS' time budget (0.5 s + 0.05 s per image) is then per image, which a
    # loaded CPU does not exceed; at YOLOv5's 32 it cut off whole images' detections here.
    run(
        [
            args.python, "-m", "yolov5.val",
            "--data", os.path.join(args.out, "data.yaml"),
            "--weights", os.path.join(folder, "weights", "last.pt"),
            "--img", str(args.img), "--batch-size", "1", "--device", "cpu", "--save-json",
            "--project", project, "--name", val_name, "--exist-ok",
        ],
        val_log,
        env,
    )  # fmt: skip
    with open(val_log, errors="replace") as f:
        if NMS_LIMIT in f.read():
            raise SystemExit(f"{val_log}: YOLOv5's NMS hit its time limit; the score is cut short")
    (predictions,) = glob.glob(os.path.join(project, val_name, "*_predictions.json"))
    return {
        "seed": seed,
        "train_s": round(train_s, 1),
        "yolov5": last_epoch(os.path.join(folder, "results.csv")),
        "pycocotools": score_json(predictions, splits["val"], len(names)),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join("runs", "neon_trees"))
    parser.add_argument("--python", required=True, help="python of the venv that has yolov5")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--img", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", default=os.path.join("runs", "yolov5_neon_trees"))
    parser.add_argument(
        "--reuse", action="store_true", help="score a run already trained under --out again"
    )
    args = parser.parse_args(argv)
    splits, names = write_yolo_layout(args.data, args.out)
    print("| seed | batch | epochs | img | mAP50 (pycocotools) | mAP50-95 | own mAP50 | train s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    results = []
    for seed in args.seeds:
        r = train_and_score(args, seed, splits, names)
        results.append(r)
        coco, own = r["pycocotools"], r["yolov5"]
        print(
            f"| {seed} | {args.batch_size} | {args.epochs} | {args.img} | {coco['mAP50']:.3f} | "
            f"{coco['mAP50_95']:.3f} | {own['mAP50']:.3f} | {r['train_s']:.0f} |",
            flush=True,
        )
    seeds = "-".join(map(str, args.seeds))
    results_json = f"results_b{args.batch_size}_e{args.epochs}_s{seeds}.json"
    with open(os.path.join(args.out, results_json), "w") as f:
        json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
