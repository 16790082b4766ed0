"""COCO report on hand-made detections: per-class AP, instance counts and the PR curve."""

import numpy as np

from kyolo.evaluate import coco_map, coco_report, plot_precision_recall


def test_report_per_class_by_hand(tmp_path):
    # Image 0: a cat found exactly; a dog whose detection misses it (IoU 0). Image 1: a second
    # cat, found. Class "emu" has no ground truth.
    truths = [
        (np.array([[0, 0, 10, 10], [20, 20, 40, 40]], float), np.array([0, 1])),
        (np.array([[5, 5, 25, 25]], float), np.array([0])),
    ]
    detections = [
        (np.array([[0, 0, 10, 10], [60, 60, 70, 70]], float), np.array([0.9, 0.8]), [0, 1]),
        (np.array([[5, 5, 25, 25]], float), np.array([0.7]), [0]),
    ]
    report = coco_report(truths, detections, ["cat", "dog", "emu"])
    assert report["per_class"]["cat"] == {"AP50": 1.0, "AP50_95": 1.0, "instances": 2}
    assert report["per_class"]["dog"] == {"AP50": 0.0, "AP50_95": 0.0, "instances": 1}
    assert report["per_class"]["emu"] == {"AP50": None, "AP50_95": None, "instances": 0}
    # mAP averages the classes with ground truth: (1 + 0) / 2; recall 2 of 3 boxes.
    assert report["mAP50"] == report["mAP50_95"] == 0.5
    np.testing.assert_allclose(report["AR100"], 0.5)
    assert report == {**report, **coco_map(truths, detections, 3)}
    curve = report["pr_curve"]
    assert curve["precision"]["emu"] is None and curve["precision"]["cat"] == [1.0] * 101
    np.testing.assert_allclose(np.mean(curve["mean"]), report["mAP50"])
    plot_precision_recall(report, str(tmp_path / "pr.png"))
    assert (tmp_path / "pr.png").stat().st_size > 5000


def test_report_without_detections_is_zero():
    truths = [(np.array([[0, 0, 10, 10]], float), np.array([1]))]
    report = coco_report(truths, [(np.zeros((0, 4)), np.zeros(0), np.zeros(0))], ["a", "b"])
    assert report["mAP50"] == 0.0 and report["per_class"]["b"]["AP50"] == 0.0
    assert report["per_class"]["a"]["AP50"] is None
