"""COCO-style mAP with ``pycocotools`` on in-memory boxes."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from kyolo.postprocess import DEFAULT_NMS


def coco_map(
    truths: Sequence[tuple[np.ndarray, np.ndarray]],
    detections: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    num_classes: int,
) -> dict[str, float]:
    """mAP over IoU 0.50 and 0.50:0.95 (COCO's ``AP`` and ``AP50``, all areas, 100 dets).

    Args:
        truths: per image ``(boxes (n, 4) xyxy pixels, classes (n,))``.
        detections: per image ``(boxes (d, 4) xyxy pixels, scores (d,), classes (d,))``, same
            image order and units as ``truths``.
    Returns:
        ``{"mAP50": …, "mAP50_95": …}``; both 0 when there are no detections.
    """
    evaluator = _cocoeval(truths, detections, num_classes)
    if evaluator is None:
        return {"mAP50": 0.0, "mAP50_95": 0.0}
    return {"mAP50": float(evaluator.stats[1]), "mAP50_95": float(evaluator.stats[0])}


def coco_report(
    truths: Sequence[tuple[np.ndarray, np.ndarray]],
    detections: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    class_names: Sequence[str],
) -> dict[str, Any]:
    """:func:`coco_map`'s inputs → the full COCO table, per class and the PR curve at IoU 0.5.

    Returns:
        ``mAP50``, ``mAP50_95``, ``mAP75``, ``AR1``, ``AR10``, ``AR100`` (all areas);
        ``per_class``: ``{name: {"AP50", "AP50_95", "instances"}}`` (APs null for a class without
        ground truth); ``pr_curve``: ``{"recall": (101,), "precision": {name: (101,) or null},
        "mean": (101,)}``: COCO's interpolated precision at 101 recall points, IoU 0.5, 100
        detections (0 past the recall a class reaches); the mean over classes with ground truth
        integrates to ``mAP50``.
    """
    evaluator = _cocoeval(truths, detections, len(class_names))
    labels = [np.asarray(c, np.int64).ravel() for _, c in truths]
    instances = np.bincount(
        np.concatenate([np.zeros(0, np.int64), *labels]), minlength=len(class_names)
    )
    if evaluator is None:
        precision = np.zeros((10, 101, len(class_names)))
        stats = np.zeros(12)
    else:
        # COCOeval's precision: (IoU thresholds, recall points, classes, areas, max dets); area 0
        # is "all", max dets 2 is 100; -1 only for classes without ground truth.
        precision = evaluator.eval["precision"][:, :, :, 0, 2]
        stats = evaluator.stats
    has_truth = instances > 0
    per_class = {
        name: {
            "AP50": float(np.mean(precision[0, :, k])) if has_truth[k] else None,
            "AP50_95": float(np.mean(precision[:, :, k])) if has_truth[k] else None,
            "instances": int(instances[k]),
        }
        for k, name in enumerate(class_names)
    }
    mean = precision[0][:, has_truth].mean(axis=1) if has_truth.any() else np.zeros(101)
    return {
        "mAP50": float(stats[1]),
        "mAP50_95": float(stats[0]),
        "mAP75": float(stats[2]),
        "AR1": float(stats[6]),
        "AR10": float(stats[7]),
        "AR100": float(stats[8]),
        "per_class": per_class,
        "pr_curve": {
            "recall": np.linspace(0.0, 1.0, 101).tolist(),
            "mean": mean.tolist(),
            "precision": {
                name: precision[0, :, k].tolist() if has_truth[k] else None
                for k, name in enumerate(class_names)
            },
        },
    }


def _cocoeval(truths, detections, num_classes: int) -> COCOeval | None:
    """A summarised ``COCOeval`` of in-memory boxes; None when nothing was detected."""
    if len(truths) != len(detections):
        raise ValueError(f"{len(truths)} ground-truth images but {len(detections)} detections")
    images, annotations, results = [], [], []
    for image_id, ((gt_boxes, gt_classes), (boxes, scores, classes)) in enumerate(
        zip(truths, detections, strict=True)
    ):
        images.append({"id": image_id})
        for box, cls in zip(_xywh(gt_boxes), gt_classes, strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(cls),
                    "bbox": box.tolist(),
                    "area": float(box[2] * box[3]),
                    "iscrowd": 0,
                }
            )
        for box, score, cls in zip(_xywh(boxes), scores, classes, strict=True):
            results.append([image_id, *box.tolist(), float(score), int(cls)])
    if not results or not annotations:
        return None
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt = COCO()
        gt.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": c} for c in range(num_classes)],
        }
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(np.array(results, np.float64)), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def _xywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def evaluate_detector(
    detect_fn: Callable[[tf.Tensor], dict[str, tf.Tensor]],
    dataset: tf.data.Dataset,
    num_classes: int,
) -> dict[str, float]:
    """COCO mAP of ``detect_fn`` over a ``make_dataset(..., encode=None)`` dataset.

    ``detect_fn(images)`` returns a :func:`kyolo.postprocess.non_max_suppression` dict with boxes
    in network-input pixels, the frame of the dataset's boxes. (A letterbox is a uniform scale
    and shift, so IoU and therefore mAP are the same as in original image pixels.)
    """
    truths, detections = [], []
    for batch in dataset:
        found = {k: v.numpy() for k, v in detect_fn(batch["image"]).items()}
        for i, n in enumerate(batch["num_boxes"].numpy()):
            truths.append((batch["boxes"][i, :n].numpy(), batch["classes"][i, :n].numpy()))
            d = found["count"][i]
            detections.append(
                (found["boxes"][i, :d], found["scores"][i, :d], found["classes"][i, :d])
            )
    return coco_map(truths, detections, num_classes)


def detect_annotations(
    detector: Callable[..., dict[str, np.ndarray]],
    annotations: Sequence,
    *,
    score_threshold: float = DEFAULT_NMS["score_threshold"],
    iou_threshold: float = DEFAULT_NMS["iou_threshold"],
) -> tuple[list, list]:
    """Run ``detector`` (:class:`kyolo.export.runtime.Detector`) on each annotation's image file.

    Returns :func:`coco_map`'s ``(truths, detections)``, boxes in original image pixels. The
    thresholds default to COCO practice (keep low scores: mAP integrates over them).
    """
    from kyolo.data.pipeline import decode_image

    truths, detections = [], []
    for ann in annotations:
        image = decode_image(tf.io.read_file(ann.image_path)).numpy()
        found = detector(image, score_threshold=score_threshold, iou_threshold=iou_threshold)
        truths.append((ann.boxes, ann.classes))
        detections.append((found["boxes"], found["scores"], found["classes"]))
    return truths, detections


def plot_precision_recall(report: dict[str, Any], path: str, title: str = "") -> None:
    """PNG of :func:`coco_report`'s PR curves at IoU 0.5: one thin line per class, the mean bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = report["pr_curve"]
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, precision in curve["precision"].items():
        if precision is not None:
            ap = report["per_class"][name]["AP50"]
            ax.plot(curve["recall"], precision, linewidth=0.8, label=f"{name} {ap:.3f}")
    ax.plot(curve["recall"], curve["mean"], "k", linewidth=2.5, label=f"all {report['mAP50']:.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01))
    ax.set_title(title or "precision-recall at IoU 0.5 (AP50 per class)")
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
