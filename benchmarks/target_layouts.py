"""The v3 loss (``YoloLoss``, XLA, forward + backward) on dense vs sparse ``y_true``.

Same boxes, same head outputs, same loss value (checked); only the target layout differs, so the
difference is what reading a dense ``(b, gh, gw, A, 5 + C)`` target costs. Run from the repository
root::

    .venv/bin/python -m benchmarks.target_layouts              # ~1 minute
"""

from __future__ import annotations

import argparse

from benchmarks import common
from benchmarks import loss_speed as ls


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[416, 640])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--boxes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    common.set_threads(args.threads)
    import tensorflow as tf

    from kyolo.config import YOLOV3
    from kyolo.losses import YoloLoss

    common.print_machine(common.machine(), args.threads)
    candidates, sizes = {}, {}
    for size in args.sizes:
        cfg = YOLOV3.replace(input_size=(size, size))
        outputs = [tf.constant(o) for o in common.head_outputs(cfg, args.batch)]
        values = {}
        for layout in ("dense", "sparse"):
            layout_cfg = cfg.replace(target_layout=layout)
            y_true, _, _ = common.encoded_batch(layout_cfg, args.batch, args.boxes)
            sizes[(size, layout)] = sum(t.nbytes for t in y_true) / 1e6
            y_true = [tf.constant(t) for t in y_true]
            losses = [YoloLoss(layout_cfg, s) for s in range(cfg.num_scales)]

            def total(o, y, losses=losses):
                return tf.add_n(
                    [tf.reduce_mean(f(t, p)) for f, t, p in zip(losses, y, o, strict=True)]
                )

            step = ls.compiled(total, "xla")
            values[layout] = float(step(outputs, y_true)[0])
            candidates[(size, layout)] = lambda step=step, y=y_true, o=outputs: step(o, y)
        ls.check_close(f"sparse layout at {size}", values["sparse"], values["dense"], rel=1e-6)
    times = common.interleaved(candidates, 2, args.repeats)
    rows = []
    for (size, layout), t in times.items():
        dense_ms = common.median_ms(times[(size, "dense")])
        ms = common.median_ms(t)
        rows.append(
            [f"{size}x{size}", layout, f"{sizes[(size, layout)]:.1f}", f"{ms:.1f}",
             common.spread(t), f"{dense_ms / ms:.2f}x"]
        )  # fmt: skip
    print(f"\n### v3 loss, XLA, batch {args.batch}, 80 classes, {args.boxes} boxes/image\n")
    headers = ["input", "y_true layout", "y_true MB", "median ms", "IQR", "speed-up vs dense"]
    print(common.table(headers, rows))


if __name__ == "__main__":
    main()
