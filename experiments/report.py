"""Tables and plots from ``experiments/results/`` into ``docs/experiments.md`` (between markers)."""

from __future__ import annotations

import glob
import json
import os
from collections import defaultdict

import matplotlib
import numpy as np

from experiments.run import HERE, RESULTS, VARIANTS

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DOCS = os.path.join(os.path.dirname(HERE), "docs")
START, END = "<!-- results:start -->", "<!-- results:end -->"


def load() -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(glob.glob(os.path.join(RESULTS, "*.json"))):
        name = os.path.basename(path).split("__")[0]
        with open(path) as f:
            runs[name].append(json.load(f))
    return {name: runs[name] for name in VARIANTS if name in runs}


def spread(values: list[float], digits: int = 3) -> str:
    """``mean ± half-range`` over seeds (with two seeds: half their difference)."""
    values = np.asarray(values, float)
    half = (values.max() - values.min()) / 2
    return f"{values.mean():.{digits}f} ± {half:.{digits}f}"


def table(runs: dict[str, list[dict]]) -> str:
    head = (
        "| variant | preset + overrides | seeds | val mAP50 | val mAP50-95 | final loss | "
        "best loss | wall time (s) |\n|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for name, results in runs.items():
        preset, overrides = VARIANTS[name]
        rows.append(
            f"| {name} | {preset} {' '.join(overrides)} | {len(results)} | "
            f"{spread([r['val_mAP50'] for r in results])} | "
            f"{spread([r['val_mAP50_95'] for r in results])} | "
            f"{spread([r['final_loss'] for r in results], 2)} | "
            f"{spread([r['best_loss'] for r in results], 2)} | "
            f"{spread([r['wall_time_s'] for r in results], 0)} |"
        )
    return head + "\n".join(rows) + "\n"


def plot_map(runs: dict[str, list[dict]], path: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    colors = plt.cm.tab20(np.linspace(0, 1, 20))[::2].tolist() + ["black"]  # 11 distinct
    for (name, results), color in zip(runs.items(), colors, strict=False):
        for ax, key in zip(axes, ("val_mAP50", "val_mAP50_95"), strict=True):
            history = [r["history"] for r in results]
            epochs = np.unique(np.asarray(history[0]["val_mAP_epoch"], int))
            values = np.mean([np.asarray(h[key])[epochs] for h in history], axis=0)
            ax.plot(epochs + 1, values, "o-", ms=3, label=name, color=color)
    for ax, title in zip(axes, ("val mAP50", "val mAP50-95"), strict=True):
        ax.set(xlabel="epoch", title=f"{title} (mean of seeds)", ylim=(0, 1))
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_components(runs: dict[str, list[dict]], path: str) -> None:
    """Per variant, each loss component summed over scales, per epoch (mean of seeds)."""
    names = list(runs)
    cols = 4
    fig, axes = plt.subplots(
        (len(names) + cols - 1) // cols, cols, figsize=(14, 3 * ((len(names) + 3) // 4))
    )
    for ax, name in zip(axes.flat, names, strict=False):
        history = runs[name][0]["history"]
        parts = sorted({k.split("_", 1)[1] for k in history if k.startswith("s0_")})
        for part in parts:
            keys = [k for k in history if k.startswith("s") and k.endswith(f"_{part}")]
            keys = [k for k in keys if k.split("_")[0][1:].isdigit()]
            series = np.mean(
                [np.sum([r["history"][k] for k in keys], axis=0) for r in runs[name]], axis=0
            )
            ax.plot(np.arange(1, len(series) + 1), series, label=part)
        ax.set(title=name, yscale="log", xlabel="epoch")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    runs = load()
    os.makedirs(os.path.join(DOCS, "img"), exist_ok=True)
    plot_map(runs, os.path.join(DOCS, "img", "experiments_map.png"))
    plot_components(runs, os.path.join(DOCS, "img", "experiments_loss.png"))
    doc = os.path.join(DOCS, "experiments.md")
    text = open(doc).read() if os.path.exists(doc) else f"{START}\n{END}\n"
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    with open(doc, "w") as f:
        f.write(f"{before}{START}\n{table(runs)}{END}{after}")
    print(table(runs))


if __name__ == "__main__":
    main()
