"""NeonTrees conversion on a synthetic wheel written here; the real deepforest wheel is not needed.

The real wheel is 20.6 MB with a 15 MB image in it, above the size a test extra should pull in, so
CI checks the conversion logic on a hand-made scene whose expected tiles and boxes are written out
below as arithmetic.
"""

import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from kyolo.data.coco import read_coco
from kyolo.data.neon_trees import (
    DATA_PREFIX,
    Scene,
    crop_boxes,
    extract_scenes,
    make_neon_trees,
    split_tiles,
    tile_edges,
)

VOC = """<annotation>
  <filename>{image}</filename>
  <size><width>{width}</width><height>{height}</height><depth>3</depth></size>
  {objects}
</annotation>
"""
OBJECT = (
    "<object><name>Tree</name><difficult>0</difficult><bndbox><xmin>{}</xmin><ymin>{}</ymin>"
    "<xmax>{}</xmax><ymax>{}</ymax></bndbox></object>"
)

# A 300x200 scene cut with tile=100: columns 0|100|200|300, rows 0|100|200.
SCENE_BOXES = [
    (10, 20, 60, 70),  # inside tile r0 c0
    (90, 10, 130, 50),  # crosses x=100: 10/40 of it in c0 (dropped), 30/40 in c1 (kept)
    (150, 80, 190, 140),  # crosses y=100: 20/60 in r0 (dropped), 40/60 in r1 c1 (kept)
    (240, 130, 290, 190),  # inside tile r1 c2
]
EXPECTED = {
    "scene_r00_c00.png": [(10, 20, 60, 70)],
    "scene_r00_c01.png": [(0, 10, 30, 50)],
    "scene_r00_c02.png": [],
    "scene_r01_c00.png": [],
    "scene_r01_c01.png": [(50, 0, 90, 40)],
    "scene_r01_c02.png": [(40, 30, 90, 90)],
}


@pytest.fixture
def wheel(tmp_path):
    """A zip laid out like the deepforest wheel, holding one scene and one unrelated member."""
    pixels = np.random.default_rng(0).integers(0, 256, (200, 300, 3)).astype(np.uint8)
    image_path = tmp_path / "scene.png"
    Image.fromarray(pixels).save(image_path)
    xml = VOC.format(
        image="scene.png",
        width=300,
        height=200,
        objects="".join(OBJECT.format(*box) for box in SCENE_BOXES),
    )
    path = tmp_path / "fake-0.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.write(image_path, DATA_PREFIX + "scene.png")
        z.writestr(DATA_PREFIX + "scene.xml", xml)
        z.writestr(DATA_PREFIX + "other.xml", "<annotation/>")
    return path, pixels


def test_tile_edges_split_evenly():
    # n = round(L / tile); edges round(i * L / n).
    assert tile_edges(1249, 256).tolist() == [0, 250, 500, 749, 999, 1249]
    assert tile_edges(400, 256).tolist() == [0, 200, 400]
    assert tile_edges(100, 256).tolist() == [0, 100]
    with pytest.raises(ValueError):
        tile_edges(0, 256)


def test_crop_boxes_clips_shifts_and_drops_by_visible_share():
    boxes = np.array([[90, 10, 130, 50], [10, 20, 60, 70], [300, 0, 310, 10]], np.float32)
    cropped, keep = crop_boxes(boxes, (100, 0, 200, 100), min_visible=0.5)
    assert keep.tolist() == [True, False, False]
    np.testing.assert_array_equal(cropped, [[0, 10, 30, 50]])
    # 30/40 visible: kept at 0.75, dropped just above it.
    assert crop_boxes(boxes[:1], (100, 0, 200, 100), 0.75)[1].tolist() == [True]
    assert crop_boxes(boxes[:1], (100, 0, 200, 100), 0.76)[1].tolist() == [False]


def test_split_is_seeded_disjoint_and_complete():
    train, val = split_tiles(114, 0.2, seed=0)
    assert len(val) == 23 and len(train) == 91
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(114))
    again = split_tiles(114, 0.2, seed=0)
    assert train.tolist() == again[0].tolist() and val.tolist() == again[1].tolist()
    assert val.tolist() != split_tiles(114, 0.2, seed=1)[1].tolist()


def test_converted_boxes_and_pixels_equal_the_source(tmp_path, wheel):
    wheel_path, pixels = wheel
    source = extract_scenes(wheel_path, tmp_path / "src", [Scene("scene.xml", "scene.png")])
    assert sorted(os.listdir(source)) == ["scene.png", "scene.xml"]
    paths = make_neon_trees(
        source,
        tmp_path / "out",
        scenes=[Scene("scene.xml", "scene.png")],
        tile=100,
        val_fraction=1 / 3,
        seed=0,
    )
    got = {}
    for json_path, images in (
        (paths.train_json, paths.train_images),
        (paths.val_json, paths.val_images),
    ):
        annotations, names = read_coco(json_path, images)
        assert names == ["Tree"]
        for a in annotations:
            name = os.path.basename(a.image_path)
            got[name] = a
            assert a.classes.tolist() == [0] * len(a.boxes)
    assert sorted(got) == sorted(EXPECTED)
    assert len(os.listdir(paths.val_images)) == 2
    for name, boxes in EXPECTED.items():
        np.testing.assert_array_equal(got[name].boxes, np.asarray(boxes, np.float32).reshape(-1, 4))
        row, col = int(name[7:9]), int(name[11:13])
        tile = np.asarray(Image.open(got[name].image_path))
        np.testing.assert_array_equal(
            tile, pixels[100 * row : 100 * row + 100, 100 * col : 100 * col + 100]
        )


def test_same_arguments_same_bytes(tmp_path, wheel):
    source = extract_scenes(wheel[0], tmp_path / "src", [Scene("scene.xml", "scene.png")])
    outputs = []
    for name in ("a", "b"):
        paths = make_neon_trees(
            source, tmp_path / name, scenes=[Scene("scene.xml", "scene.png")], tile=100
        )
        with open(paths.train_json, "rb") as f, open(paths.val_json, "rb") as g:
            outputs.append((f.read(), g.read()))
    assert outputs[0] == outputs[1]
