"""Measured distance of kyolo's losses from the independent NumPy references in ``references/``.

The parity tests assert bounds (keras-yolo3 rel 1e-5, YOLOv5 rel 1e-4); this prints the actual
worst relative errors over the shared cases (``references/cases.py``). From the repository
root::

    .venv/bin/python -m benchmarks.parity        # ~20 s
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kyolo.compat import keras_yolo3
from references import cases, keras_yolo3_np, yolov5_np


def relative(got: np.ndarray, want: np.ndarray) -> float:
    """``‖got − want‖ / ‖want‖`` in float64 (a float32 subtraction would round the reference)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-12))


def compiled_loss(anchors: np.ndarray):
    """keras-yolo3's ``yolo_loss`` of ``*outputs, *y_true``, ``anchors`` bound as constants."""
    return lambda *args: keras_yolo3.yolo_loss(list(args), anchors, 80)


def keras_yolo3_errors() -> tuple[float, float]:
    """Worst relative loss error, eager and under XLA, over ``cases.V3_CASES`` (80 classes)."""
    eager = xla = 0.0
    for shape, anchors, counts in cases.V3_CASES:
        outputs, y_true = cases.make_v3_case(sum(shape), shape, anchors, counts)
        want = keras_yolo3_np.yolo_loss(outputs, y_true, anchors, 80)
        compiled = tf.function(compiled_loss(anchors), jit_compile=True)
        eager = max(eager, relative(keras_yolo3.yolo_loss([*outputs, *y_true], anchors, 80), want))
        xla = max(xla, relative(compiled(*outputs, *y_true), want))
    return eager, xla


def yolov5_errors() -> tuple[float, float]:
    """Worst relative loss and gradient-norm error of ``compute_loss`` over the v5 test cases."""
    loss_error = grad_error = 0.0
    for (p, targets, anchors, strides), extra in cases.V5_CASES.values():
        hyp = {**cases.HYP, **extra}
        loss, _, grads = cases.run_compute_loss(p, targets, anchors, strides, hyp)
        want, _ = yolov5_np.compute_loss(p, targets, anchors, strides, hyp)
        want_grads = yolov5_np.compute_loss_grad(p, targets, anchors, strides, hyp)
        loss_error = max(loss_error, relative(loss, want))
        grad_error = max(
            grad_error, *(relative(g, w) for g, w in zip(grads, want_grads, strict=True))
        )
    return loss_error, grad_error


def main() -> None:
    eager, xla = keras_yolo3_errors()
    loss, grad = yolov5_errors()
    print("| reference | quantity | worst relative error |")
    print("|---|---|---|")
    print(f"| keras-yolo3 `yolo_loss` ({len(cases.V3_CASES)} cases) | loss, eager | {eager:.1e} |")
    print(f"| keras-yolo3 `yolo_loss` ({len(cases.V3_CASES)} cases) | loss, XLA | {xla:.1e} |")
    print(f"| YOLOv5 `ComputeLoss` ({len(cases.V5_CASES)} cases) | loss | {loss:.1e} |")
    print(f"| YOLOv5 `ComputeLoss` ({len(cases.V5_CASES)} cases) | gradient (norm) | {grad:.1e} |")


if __name__ == "__main__":
    main()
