"""Bad data → a clear error naming the file, or a documented policy; the gaps left by tests/data.

Readers' box, JSON/XML/txt and path errors are tested in ``tests/data/`` and the encoder's in
``tests/encode/test_encoder.py``; ``docs/reliability.md`` maps every case to its test.
"""

import io
import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kyolo.data import AnnotationError, read_coco, read_voc, read_yolo
from kyolo.data.annotations import Annotation
from kyolo.data.neon_pretrain import read_deepforest_csv
from kyolo.data.pipeline import check_box_counts, check_images, make_dataset
from kyolo.encode import encode_targets, target_encoder
from kyolo.losses import YoloLoss
from kyolo.models import build_model
from tests.helpers import nano_config


def test_missing_annotation_files_and_folders_name_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    (tmp_path / "images").mkdir()
    with pytest.raises(AnnotationError, match=r"nowhere.*cannot read the annotation file"):
        read_coco(missing, tmp_path)
    with pytest.raises(AnnotationError, match=r"annotation folder .*nowhere.* does not exist"):
        read_voc(missing, tmp_path, ["a"])
    with pytest.raises(AnnotationError, match=r"image folder .*nowhere.* does not exist"):
        read_yolo(missing, tmp_path, 1)
    # A wrong label path must not silently turn every image into a background image.
    with pytest.raises(AnnotationError, match=r"label folder .*nowhere.* does not exist"):
        read_yolo(tmp_path / "images", missing, 1)


def test_a_folder_given_as_coco_file_names_it(tmp_path):
    with pytest.raises(AnnotationError, match="cannot read the annotation file"):
        read_coco(tmp_path, tmp_path)


W, H = 96, 64


def image_bytes(fmt):
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (H, W, 3), np.uint8)).save(out, fmt)
    return out.getvalue()


@pytest.fixture
def background(tmp_path):
    """Two good background images as annotations."""
    paths = []
    for i in range(2):
        path = tmp_path / f"good{i}.png"
        path.write_bytes(image_bytes("PNG"))
        paths.append(Annotation(str(path), W, H, np.zeros((0, 4)), np.zeros(0)))
    return paths


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF"])
def test_truncated_image_passes_the_header_check_and_is_named_by_check_images(
    tmp_path, background, fmt
):
    data = image_bytes(fmt)
    path = tmp_path / f"truncated.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    # The readers only read headers, which survive truncation: the file is accepted...
    with Image.open(path) as im:
        assert im.size == (W, H)
    annotations = [*background, Annotation(str(path), W, H, np.zeros((0, 4)), np.zeros(0))]
    cfg = nano_config()
    # ...and tf.data's decoder fails without naming it;
    with pytest.raises(tf.errors.InvalidArgumentError):
        list(make_dataset(annotations, cfg, batch_size=3, training=False))
    # check_images names it (training.train runs it after such a failure).
    with pytest.raises(AnnotationError, match=rf"truncated\.{fmt.lower()}: cannot decode"):
        check_images(annotations)
    check_images(background)


def test_check_images_names_missing_and_resized_images(tmp_path, background):
    gone = Annotation(str(tmp_path / "gone.png"), W, H, np.zeros((0, 4)), np.zeros(0))
    with pytest.raises(AnnotationError, match=r"gone\.png: cannot decode"):
        check_images([*background, gone])
    wrong = Annotation(background[1].image_path, W + 1, H, np.zeros((0, 4)), np.zeros(0))
    with pytest.raises(AnnotationError, match=r"good1\.png: decoded size 96x64 differs .* 97x64"):
        check_images([background[0], wrong])


def test_check_box_counts_names_the_image():
    many = Annotation("crowded.png", 10, 10, np.tile([[1, 1, 5, 5]], (9, 1)), np.zeros(9))
    few = Annotation("sparse.png", 10, 10, [[1, 1, 5, 5]], [0])
    check_box_counts([few, many], 9)
    with pytest.raises(ValueError, match=r"crowded\.png has 9 boxes, more than cfg.max_boxes=8"):
        check_box_counts([few, many], 8)


def test_a_whole_dataset_of_background_images_trains_with_a_finite_loss(background):
    cfg = nano_config("yolov5")  # the "mean" reduction divides by the positive count: 0 here
    ds = make_dataset(background, cfg, batch_size=2, training=True, encode=target_encoder(cfg))
    model = build_model("nano", cfg, width=4)
    model.compile("sgd", loss=[YoloLoss(cfg, s) for s in range(cfg.num_scales)])
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


@pytest.mark.parametrize(
    "box, message",
    [
        ([0.5, 0.5, np.inf, 0.2], "finite"),
        ([-np.inf, 0.5, 0.2, 0.2], "finite"),
        ([0.5, 0.5, -np.inf, 0.2], "finite"),  # not padding: padding rows are finite
        ([0.5, 0.5, 0.2, 0.0], "height must be > 0"),
        ([0.5, -0.01, 0.2, 0.2], "centre must lie inside"),
    ],
)
def test_encoder_rejects_infinite_and_degenerate_boxes(box, message):
    cfg = nano_config()
    boxes = np.array([[0.3, 0.3, 0.1, 0.1], box], np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message) as err:
        encode_targets(boxes, np.array([0, 1]), cfg)
    assert "box index 1" in str(err.value).replace("\n", " ")


def test_encoder_padding_rows_are_the_documented_w_le_0_convention():
    # keras-yolo3's convention (README, kyolo.encode.validate.check_boxes): w <= 0 marks padding,
    # whatever h holds. The readers never emit such rows: they reject zero/negative sizes.
    cfg = nano_config()
    padded = np.array([[0.3, 0.3, 0.1, 0.1], [0.5, 0.5, 0.0, 0.4], [0.5, 0.5, -1.0, 0.4]])
    got = encode_targets(padded.astype(np.float32), np.array([0, 1, 2]), cfg)
    want = encode_targets(padded[:1].astype(np.float32), np.array([0]), cfg)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g.numpy(), w.numpy())


def test_coco_file_with_only_background_images_is_read(tmp_path, background):
    data = {
        "images": [{"id": 1, "file_name": "good0.png", "width": W, "height": H}],
        "categories": [{"id": 3, "name": "cat"}],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    (annotation,), names = read_coco(path, tmp_path)
    assert names == ["cat"] and annotation.boxes.shape == (0, 4)


def png_claiming(width, height):
    """A 1x1 PNG whose IHDR (CRC fixed) claims ``width`` x ``height``: a decompression bomb."""
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data[12:29]  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def test_an_image_claiming_30000x30000_is_named_by_the_readers(tmp_path):
    # PIL raised DecompressionBombError (not an OSError) without the file name.
    images, labels, voc = tmp_path / "images", tmp_path / "labels", tmp_path / "voc"
    for folder in (images, labels, voc):
        folder.mkdir()
    bomb = images / "bomb.png"
    bomb.write_bytes(png_claiming(30000, 30000))
    with pytest.raises(AnnotationError) as err:
        read_yolo(images, labels, 1)
    assert f"cannot read the size of image {str(bomb)!r}" in str(err.value)
    assert "900000000 pixels" in str(err.value)
    (voc / "bomb.xml").write_text("<annotation><filename>bomb.png</filename></annotation>")
    with pytest.raises(AnnotationError, match=r"bomb\.xml: cannot read the size of image .*bomb"):
        read_voc(voc, images, ["a"])
    csv = tmp_path / "trees.csv"
    csv.write_text("image_path,xmin,ymin,xmax,ymax,label\nbomb.png,1,2,3,4,Tree\n")
    with pytest.raises(AnnotationError, match=r"trees\.csv: cannot read the size of image .*bomb"):
        read_deepforest_csv(csv, images, ["Tree"])
