import os
import time

import numpy as np
import pytest
from PIL import Image

from kyolo.data import digits
from kyolo.data.digits import make_digits
from kyolo.data.yolo_txt import read_yolo

SMALL = dict(n_train=12, n_val=5, image_size=(96, 128), min_digits=1, max_digits=3)


def _files(root):
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def test_same_seed_same_bytes(tmp_path):
    make_digits(tmp_path / "a", seed=3, **SMALL)
    make_digits(tmp_path / "b", seed=3, **SMALL)
    make_digits(tmp_path / "c", seed=4, **SMALL)
    a, b, c = (_files(tmp_path / name) for name in "abc")
    assert len(a) == 1 + 2 * (12 + 5)
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_val_images_do_not_depend_on_n_train(tmp_path):
    make_digits(tmp_path / "a", seed=0, **SMALL)
    make_digits(tmp_path / "b", seed=0, **{**SMALL, "n_train": 3})
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert all(a[k] == v for k, v in b.items())


def test_labels_read_back_with_read_yolo(tmp_path):
    paths = make_digits(tmp_path, seed=1, **SMALL)
    with open(paths.classes_file) as f:
        assert f.read().split() == [str(d) for d in range(10)] == list(paths.class_names)
    for images, labels, count in [
        (paths.train_images, paths.train_labels, 12),
        (paths.val_images, paths.val_labels, 5),
    ]:
        annotations = read_yolo(images, labels, num_classes=10)
        assert len(annotations) == count
        for ann in annotations:
            assert (ann.width, ann.height) == (128, 96)
            with Image.open(ann.image_path) as im:
                assert im.mode == "RGB" and im.size == (128, 96)
            assert 1 <= len(ann.boxes) <= 3
            assert set(ann.classes.tolist()) <= set(range(10))
            # Boxes are whole pixels, at least 1 px inside the border.
            np.testing.assert_allclose(ann.boxes, np.round(ann.boxes), atol=1e-4)
            assert ann.boxes[:, :2].min() >= 1 and ann.boxes[:, 2].max() <= 127
            assert ann.boxes[:, 3].max() <= 95
            sizes = ann.boxes[:, 2:] - ann.boxes[:, :2]
            longer = sizes.max(axis=1)
            assert longer.min() >= 16 - 2 and longer.max() <= 40
            for i in range(len(ann.boxes)):
                for j in range(i):
                    assert _overlap(ann.boxes[i], ann.boxes[j]) < digits.MAX_OVERLAP


def _overlap(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    return inter / min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))


def test_box_is_tight_around_ink():
    crops, _ = digits._mnist_crops()
    for index in (0, 1234, 4999):
        for side in (16, 27, 40):
            alpha = digits._digit_alpha(crops[index], side)
            assert max(alpha.shape) <= side
            # Every border row and column of the (box-sized) alpha holds ink.
            assert alpha[0].any() and alpha[-1].any() and alpha[:, 0].any() and alpha[:, -1].any()


def test_train_and_val_digits_are_disjoint():
    _, labels = digits._mnist_crops()
    train, val = digits._split_pools(labels)
    assert len(train) == 4000 and len(val) == 1000
    assert not set(train.tolist()) & set(val.tolist())
    assert np.bincount(labels[val], minlength=10).tolist() == [100] * 10


def test_regenerating_replaces_old_files_and_refuses_foreign_folders(tmp_path):
    make_digits(tmp_path / "d", seed=0, **SMALL)
    make_digits(tmp_path / "d", seed=0, **{**SMALL, "n_train": 2})
    assert len(os.listdir(tmp_path / "d" / "images" / "train")) == 2
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        make_digits(tmp_path / "other", **SMALL)
    with pytest.raises(ValueError, match="digit_px"):
        make_digits(tmp_path / "e", image_size=(32, 32), digit_px=(16, 40))


@pytest.mark.slow
def test_default_size_is_fast(tmp_path):
    start = time.perf_counter()
    make_digits(tmp_path)
    elapsed = time.perf_counter() - start
    assert len(os.listdir(tmp_path / "images" / "train")) == 1000
    assert elapsed < 20, f"1200 DigitsDet images took {elapsed:.1f} s"
