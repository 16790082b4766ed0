"""kyolo.anchors: k-means on box sizes with 1 − IoU, letterboxed sizes, preset anchors."""

import numpy as np
import pytest

from kyolo.anchors import (
    dataset_anchors,
    kmeans_anchors,
    letterboxed_wh,
    mean_best_iou,
    preset_anchors,
    wh_iou,
)
from kyolo.config import YOLOV3, YOLOV5
from kyolo.data import Annotation


def test_wh_iou_by_hand():
    # 2x4 vs 4x2 centred: intersection 2x2 = 4, union 8 + 8 − 4 = 12.
    got = wh_iou(np.array([[2.0, 4.0]]), np.array([[4.0, 2.0], [2.0, 4.0]]))
    np.testing.assert_allclose(got, [[4 / 12, 1.0]])


def test_kmeans_finds_well_separated_clusters_and_is_seeded():
    rng = np.random.default_rng(0)
    centres = np.array([[10.0, 12.0], [40.0, 30.0], [120.0, 100.0]])
    wh = np.concatenate([c * rng.uniform(0.97, 1.03, (50, 2)) for c in centres])
    anchors, iou = kmeans_anchors(wh, 3, seed=1)
    np.testing.assert_allclose(anchors, centres, rtol=0.03)  # medians, sorted by area
    assert iou == pytest.approx(mean_best_iou(wh, anchors)) and iou > 0.93
    again, _ = kmeans_anchors(wh, 3, seed=1)
    np.testing.assert_array_equal(anchors, again)


def test_kmeans_rejects_too_few_or_bad_sizes():
    with pytest.raises(ValueError, match="need at least k=3 boxes"):
        kmeans_anchors(np.ones((2, 2)), 3)
    with pytest.raises(ValueError, match="positive and finite"):
        kmeans_anchors(np.array([[1.0, 0.0], [2, 2], [3, 3]]), 2)


def test_letterboxed_wh_scales_by_the_letterbox_ratio():
    wide = Annotation("a.png", 200, 100, np.array([[0, 0, 50, 20]], np.float32), np.array([0]))
    tall = Annotation("b.png", 64, 256, np.array([[0, 0, 8, 32]], np.float32), np.array([0]))
    # 200x100 into 64x128 (h, w): ratio min(64/100, 128/200) = 0.64; 256x64 → 0.25.
    got = letterboxed_wh([wide, tall], (64, 128))
    np.testing.assert_allclose(got, [[32.0, 12.8], [2.0, 8.0]], rtol=1e-6)
    anchors, _ = dataset_anchors([wide, tall], (64, 128), 2)
    np.testing.assert_allclose(anchors, [[2.0, 8.0], [32.0, 12.8]], rtol=1e-6)


def test_preset_anchors_are_the_smallest_scaled_to_the_input():
    np.testing.assert_array_equal(preset_anchors(YOLOV3, 9, (416, 416)), YOLOV3.anchors)
    got = preset_anchors(YOLOV5, 6, (320, 320))
    np.testing.assert_allclose(got, np.array(YOLOV5.anchors[:6]) * 0.5)
    with pytest.raises(ValueError, match="has 9 anchors, 12 are needed"):
        preset_anchors(YOLOV3, 12, (416, 416))
