"""COCO-style mAP with ``pycocotools`` on in-memory boxes."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


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
        return {"mAP50": 0.0, "mAP50_95": 0.0}
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
    return {"mAP50": float(evaluator.stats[1]), "mAP50_95": float(evaluator.stats[0])}


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
