"""NeonPretrain conversion on a synthetic wheel: deepforest CSV reading, relabelling, tiling."""

import json
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from kyolo.data.annotations import AnnotationError
from kyolo.data.neon_pretrain import (
    TREE_LABELS,
    make_neon_pretrain,
    read_deepforest_csv,
    shared_images,
)
from kyolo.data.neon_trees import DATA_PREFIX, Scene, extract_scenes
from tests.data.test_neon_trees import OBJECT, VOC

# deepforest's *_truth.csv order: xmin, xmax, ymin, ymax; a scores column to be ignored.
TRUTH_CSV = (
    "image_path,xmin,xmax,ymin,ymax,scores,label\n"
    "b.tif,120,190,110,180,0.9,0\n"
    "a.png,10,60,20,70,0.5,0\n"
    "b.tif,10,40,5,45,0.1,0\n"
)


def voc_object(label, box):
    return OBJECT.format(*box).replace("<name>Tree</name>", f"<name>{label}</name>")


@pytest.fixture
def images(tmp_path, write_image):
    write_image(tmp_path / "a.png", 100, 80)
    write_image(tmp_path / "b.tif", 200, 200)
    return tmp_path


def test_csv_columns_are_found_by_name_and_images_kept_in_order(images):
    (images / "truth.csv").write_text(TRUTH_CSV)
    got = read_deepforest_csv(images / "truth.csv", images, ["0"])
    assert [os.path.basename(a.image_path) for a in got] == ["b.tif", "a.png"]
    assert [(a.width, a.height) for a in got] == [(200, 200), (100, 80)]
    np.testing.assert_array_equal(got[0].boxes, [[120, 110, 190, 180], [10, 5, 40, 45]])
    np.testing.assert_array_equal(got[1].boxes, [[10, 20, 60, 70]])
    assert got[0].classes.tolist() == [0, 0]


@pytest.mark.parametrize(
    "text, message",
    [
        ("image_path,xmin,ymin,xmax,label\na.png,1,2,3,0\n", r"missing column\(s\) \['ymax'\]"),
        ("image_path,xmin,ymin,xmax,ymax,label\na.png,1,x,3,4,0\n", "line 2: coordinate"),
        (
            "image_path,xmin,ymin,xmax,ymax,label\na.png,1,2,3,4,Bird\n",
            r"box 0 \(line 2\): class 'Bird' is not in class_names",
        ),
        ("image_path,xmin,ymin,xmax,ymax,label\na.png,1,2,300,4,0\n", r"box 0 \(line 2\)"),
        ("image_path,xmin,ymin,xmax,ymax,label\nc.png,1,2,3,4,0\n", "c.png' does not exist"),
    ],
)
def test_bad_csv_names_the_problem(images, text, message):
    (images / "bad.csv").write_text(text)
    with pytest.raises(AnnotationError, match=message):
        read_deepforest_csv(images / "bad.csv", images, TREE_LABELS)


def test_every_scene_is_tiled_into_train_as_one_tree_class(tmp_path, images):
    soap = np.asarray(Image.open(images / "a.png").resize((200, 100)))
    Image.fromarray(soap).save(tmp_path / "soap.png")
    xml = VOC.format(
        image="soap.png",
        width=200,
        height=100,
        objects=voc_object("Dead", (10, 10, 50, 50)) + voc_object("Alive", (150, 20, 190, 60)),
    )
    wheel = tmp_path / "fake-0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.write(tmp_path / "soap.png", DATA_PREFIX + "soap.png")
        z.writestr(DATA_PREFIX + "soap.xml", xml)
        z.write(images / "b.tif", DATA_PREFIX + "b.tif")
        z.writestr(DATA_PREFIX + "b_truth.csv", TRUTH_CSV.replace("a.png,10,60,20,70,0.5,0\n", ""))
    scenes = [Scene("soap.xml", "soap.png"), Scene("b_truth.csv", "b.tif")]
    source = extract_scenes(wheel, tmp_path / "src", scenes)
    paths = make_neon_pretrain(source, tmp_path / "out", scenes=scenes, tile=100)

    with open(paths.val_json) as f:
        assert json.load(f)["images"] == []
    with open(paths.train_json) as f:
        coco = json.load(f)
    names = {image["id"]: image["file_name"] for image in coco["images"]}
    got = {name: [] for name in names.values()}
    for a in coco["annotations"]:
        assert a["category_id"] == 1
        got[names[a["image_id"]]].append(a["bbox"])
    assert got == {
        "soap_r00_c00.png": [[10, 10, 40, 40]],
        "soap_r00_c01.png": [[50, 20, 40, 40]],
        "b_r00_c00.png": [[10, 5, 30, 40]],
        "b_r00_c01.png": [],
        "b_r01_c00.png": [],
        "b_r01_c01.png": [[20, 10, 70, 70]],
    }
    assert coco["categories"] == [{"id": 1, "name": "Tree"}]


def test_shared_images_compares_pixels_not_files(tmp_path, write_image):
    pixels = np.random.default_rng(1).integers(0, 256, (30, 40, 3)).astype(np.uint8)
    write_image(tmp_path / "a" / "x.png", 40, 30, array=pixels)
    write_image(tmp_path / "a" / "y.png", 40, 30)
    write_image(tmp_path / "b" / "same_as_x.tif", 40, 30, array=pixels)
    write_image(tmp_path / "b" / "transposed.png", 30, 40, array=pixels.transpose(1, 0, 2))
    got = shared_images([tmp_path / "a"], [tmp_path / "b"])
    assert got == [(str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "same_as_x.tif"))]
