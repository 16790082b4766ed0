"""Wall time to a validation mAP50 on DigitsDet: kyolo's training job against YOLOv5's ``train.py``.

Both train a detector from scratch on the same DigitsDet files (1,000 training and 200 validation
128x128 images, YOLO txt labels, generated under ``--data-dir``) at image size 128 on this CPU,
one after the other, each with its own defaults otherwise:

* kyolo: ``python -m training.train`` (nano model, YOLOv5 loss preset, Adam, k-means anchors,
  no mosaic) with ``--eval-every 1`` so that mAP is known after every epoch;
* YOLOv5: ``python -m yolov5.train --cfg yolov5n.yaml --weights ''`` (v7.0, SGD,
  ``hyp.scratch-low.yaml`` with mosaic, EMA, its autoanchor), validated every epoch, run by
  ``--torch-python`` (a virtual environment with ``yolov5`` and its dependencies); the font it
  would download is replaced by matplotlib's (:func:`offline_font`), and :data:`YOLOV5_ENV` set.

While a job runs, its per-epoch log (kyolo's ``history.csv``, YOLOv5's ``results.csv``) is polled
every ``--poll`` seconds; each new epoch gets the wall time since the job's process started
(imports, data checks and compilation included). Printed: the time and epoch at which each job
first reaches ``--target`` mAP50, and both curves; the curves are written as JSON and drawn into
one PNG (``--plot``).

Run from the repository root::

    .venv/bin/python -m benchmarks.time_to_accuracy --epochs 40 --plot docs/img/time_to_accuracy.png
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

from benchmarks import common

TARGET = 0.9
"""The issue's accuracy: validation mAP50 0.9 on DigitsDet."""
YOLOV5_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
"""For YOLOv5's job. PASSIVE: OpenMP threads sleep instead of spinning between parallel regions;
on a 2-core machine shared with other jobs, spinning threads of the trainer and of its two data
loader processes made an epoch 4.5 min instead of 29 s. The other: torch >= 2.6 loads
checkpoints ``weights_only`` by default, which fails on the one YOLOv5 reloads after its last
epoch (``strip_optimizer``)."""


def digits(data_dir: str, counts: list[int]) -> tuple[str, list[str]]:
    """Generate DigitsDet (deterministic) and return its root and class names."""
    from kyolo import data

    paths = data.make_digits(data_dir, n_train=counts[0], n_val=counts[1])
    return paths.root, list(paths.class_names)


def yolov5_data_yaml(root: str, names: list[str], path: pathlib.Path) -> pathlib.Path:
    """YOLOv5's dataset yaml for DigitsDet: labels are found by ``images`` → ``labels``."""
    lines = [f"path: {root}", "train: images/train", "val: images/val", "names:"]
    lines += [f"  {i}: '{name}'" for i, name in enumerate(names)]
    path.write_text("\n".join(lines) + "\n")
    return path


def offline_font(config_dir: pathlib.Path) -> pathlib.Path:
    """A config folder for YOLOv5 (``YOLOV5_CONFIG_DIR``) holding its ``Arial.ttf``.

    ``check_dataset`` downloads that font for its plots before training, and this machine has no
    internet; matplotlib's DejaVu Sans stands in (``--noplots`` draws nothing with it anyway).
    """
    import matplotlib

    config_dir.mkdir(parents=True, exist_ok=True)
    font = pathlib.Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    shutil.copyfile(font, config_dir / "Arial.ttf")
    return config_dir


def read_csv(path: pathlib.Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(f)]


def run(command: list[str], log: pathlib.Path, metric: str, poll: float, **kwargs) -> dict:
    """Run a training job: its curve ``[(seconds since start, epoch, mAP50, 1-min loadavg)]``.

    ``log`` is its per-epoch CSV, ``metric`` the mAP50 column in it.
    """
    shutil.rmtree(log.parent, ignore_errors=True)  # a fresh run: no resume, no old rows
    seen: list[tuple[float, int, float, float]] = []
    start = time.perf_counter()
    with open(log.parent.parent / f"{log.parent.name}.out", "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        while True:
            done = process.poll() is not None
            rows = read_csv(log)
            now = time.perf_counter() - start
            for epoch, row in enumerate(rows[len(seen) :], start=len(seen)):
                value = row.get(metric, "")
                mean_ap = float(value) if value else float("nan")
                seen.append((now, epoch + 1, mean_ap, os.getloadavg()[0]))
            if done:
                break
            time.sleep(poll)
    return {
        "command": command,
        "returncode": process.returncode,
        "wall_s": time.perf_counter() - start,
        "curve": seen,
    }


def first_reaching(curve: list, target: float) -> tuple[float, int] | None:
    return next(((t, epoch) for t, epoch, value, _ in curve if value >= target), None)


def plot(results: dict[str, dict], target: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, result in results.items():
        curve = result["curve"]
        ax.plot([p[0] / 60 for p in curve], [p[2] for p in curve], marker=".", label=name)
    ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"mAP50 {target}")
    ax.set_xlabel("wall time since the job started (min)")
    ax.set_ylabel("validation mAP50")
    ax.set_title("DigitsDet, 128x128, from scratch, 2-core CPU")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40, help="epochs of each job")
    parser.add_argument("--yolov5-epochs", type=int, help="default: --epochs")
    parser.add_argument(
        "--jobs", nargs="+", default=["kyolo", "yolov5"], choices=["kyolo", "yolov5"]
    )
    parser.add_argument("--target", type=float, default=TARGET)
    parser.add_argument("--data-dir", default=os.path.join("runs", "digitsdet"))
    parser.add_argument(
        "--digits", type=int, nargs=2, default=[1000, 200], metavar=("TRAIN", "VAL")
    )
    parser.add_argument("--out", default=os.path.join("runs", "time_to_accuracy"))
    parser.add_argument("--plot", help="PNG of both curves")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between log reads")
    parser.add_argument("--torch-python", default="/work/venv-torch/bin/python")
    parser.add_argument("--workers", type=int, default=2, help="YOLOv5's data loader workers")
    parser.add_argument("--kyolo-args", nargs=argparse.REMAINDER, default=[],
                        help="more flags for training.train (last)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = pathlib.Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    import keras  # noqa: F401 - versions for the header only
    import tensorflow as tf  # noqa: F401

    info = common.machine()
    common.print_machine(info, os.cpu_count())
    root, names = digits(args.data_dir, args.digits)
    results = {}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if "kyolo" in args.jobs:
        command = [sys.executable, "-m", "training.train", "--data-dir", root]
        command += ["--digits", *map(str, args.digits), "--out", str(out / "kyolo")]
        command += ["--epochs", str(args.epochs), "--eval-every", "1"]
        command += args.kyolo_args
        results["kyolo (training.train, nano)"] = run(
            command, out / "kyolo" / "history.csv", "val_mAP50", args.poll, env=env
        )
    if "yolov5" in args.jobs:
        data_yaml = yolov5_data_yaml(root, names, out / "digits.yaml")
        epochs = args.yolov5_epochs or args.epochs
        command = [args.torch_python, "-m", "yolov5.train", "--data", str(data_yaml)]
        command += ["--cfg", "yolov5n.yaml", "--weights", "", "--img", "128", "--batch-size", "16"]
        command += ["--epochs", str(epochs), "--device", "cpu", "--workers", str(args.workers)]
        command += ["--project", str(out), "--name", "yolov5", "--exist-ok", "--noplots"]
        font_dir = str(offline_font(out / "yolov5_config"))
        results["YOLOv5 (train.py, yolov5n)"] = run(
            command, out / "yolov5" / "results.csv", "metrics/mAP_0.5", args.poll, cwd=out,
            env={**env, **YOLOV5_ENV, "YOLOV5_CONFIG_DIR": font_dir},
        )  # fmt: skip
    (out / "curves.json").write_text(json.dumps(results, indent=1))
    rows = []
    for name, result in results.items():
        reached = first_reaching(result["curve"], args.target)
        final = result["curve"][-1] if result["curve"] else (float("nan"), 0, float("nan"), 0)
        rows.append([
            name,
            str(result["returncode"]),
            str(final[1]),
            f"{result['wall_s']:.0f}",
            f"{final[2]:.3f}",
            f"{max((p[2] for p in result['curve']), default=float('nan')):.3f}",
            f"{reached[0]:.0f} (epoch {reached[1]})" if reached else "not reached",
        ])  # fmt: skip
    print(f"\n### Time to validation mAP50 {args.target} on DigitsDet, 128x128\n")
    headers = ["job", "exit", "epochs", "wall s", "final mAP50", "best mAP50",
               f"s to mAP50 >= {args.target}"]  # fmt: skip
    print(common.table(headers, rows))
    timed = {n: first_reaching(r["curve"], args.target) for n, r in results.items()}
    if len(timed) == 2 and all(timed.values()):
        (k_name, k), (v_name, v) = timed.items()
        print(f"\n{k_name} / {v_name}: {k[0] / v[0]:.2f}x the wall time to mAP50 {args.target}")
    if args.plot:
        plot(results, args.target, args.plot)
        print(f"plot: {args.plot}")
    print(f"loadavg at start {info['loadavg'][0]:.2f}, at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
