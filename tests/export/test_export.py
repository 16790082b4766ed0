"""Exports of a tiny detector: SavedModel, TFLite (builtin ops; float32, float16, int8) and ONNX
give the Keras model's heads and the SavedModel's detections, and carry config and class names."""

import importlib.util
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from kyolo.export import export_onnx, export_saved_model, export_tflite
from kyolo.export.runtime import load_detector, model_format
from kyolo.export.tflite import tflite_interpreter
from kyolo.models import build_model
from kyolo.postprocess import class_offset_nms, non_max_suppression
from kyolo.saving import load_trained, save_model
from tests.helpers import nano_config

NAMES = ["cat", "dog", "emu"]
LOW = {"score_threshold": 0.001, "iou_threshold": 0.5}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A random nano detector saved with its metadata, and its SavedModel export."""
    keras.utils.set_random_seed(3)
    cfg = nano_config("yolov5", 3, 64)
    model = build_model("nano", cfg, width=4)
    folder = tmp_path_factory.mktemp("export")
    save_model(model, folder / "model.keras", cfg=cfg, class_names=NAMES)
    export_saved_model(model, cfg, folder / "serving", class_names=NAMES)
    return model, cfg, folder


@pytest.fixture(scope="module")
def tflite32(trained):
    model, cfg, folder = trained
    return export_tflite(model, cfg, folder / "model.tflite", class_names=NAMES)


def canvases(cfg, count=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((count, 1, *cfg.input_size, 3)).astype(np.float32)


def image(seed=0, shape=(50, 90, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_class_offset_nms_keeps_what_per_class_nms_keeps():
    rng = np.random.default_rng(0)
    # 80 boxes in a 40 px square: many overlaps within and across 4 classes.
    xy = rng.uniform(0, 30, (80, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 12, (80, 2))], axis=1).astype(np.float32)
    scores = rng.random((80, 4)).astype(np.float32)
    want = non_max_suppression(boxes[None], scores[None], max_detections=300, **LOW)
    got = class_offset_nms(boxes, scores, max_detections=300, **LOW)
    n = int(want["count"][0])
    assert int(got["count"]) == n and 20 < n < 300
    np.testing.assert_array_equal(got["classes"], want["classes"][0])
    np.testing.assert_allclose(got["scores"], want["scores"][0], rtol=1e-6)
    np.testing.assert_allclose(got["boxes"], want["boxes"][0], atol=1e-5)


def test_class_offset_nms_by_hand():
    # Two boxes with IoU 0.6: same class, the lower one goes; different classes, both stay.
    boxes = np.array([[0, 0, 10, 10], [0, 2.5, 10, 12.5]], np.float32)
    same = class_offset_nms(boxes, np.array([[0.9], [0.8]], np.float32), max_detections=3)
    assert int(same["count"]) == 1
    np.testing.assert_array_equal(same["scores"], np.float32([0.9, 0, 0]))
    apart = np.array([[0.9, 0.0], [0.0, 0.8]], np.float32)
    both = class_offset_nms(boxes, apart, max_detections=3)
    assert int(both["count"]) == 2 and both["classes"].numpy().tolist() == [0, 1, 0]
    np.testing.assert_array_equal(both["boxes"][:2], boxes)


def test_saved_model_serves_one_image_or_a_batch_with_threshold_inputs(trained):
    _, cfg, folder = trained
    loaded = tf.saved_model.load(str(folder / "serving"))
    one = image()
    low = loaded.serve(one, LOW["score_threshold"], LOW["iou_threshold"])
    batch = loaded.serve(one[None], LOW["score_threshold"], LOW["iou_threshold"])
    for key in ("boxes", "scores", "classes", "count"):
        np.testing.assert_array_equal(low[key], batch[key])
    assert low["boxes"].shape == (1, 100, 4) and int(low["count"][0]) > 5
    # Default thresholds (0.25, 0.45): only boxes worth showing; serving_default is the same.
    default = loaded.serve(one)
    count = int(default["count"][0])
    assert count < int(low["count"][0])
    assert np.all(default["scores"][0, :count] >= 0.25)
    signature = loaded.signatures["serving_default"](images=tf.constant(one[None]))
    np.testing.assert_array_equal(signature["scores"], default["scores"])


def test_every_format_carries_config_and_class_names(trained, tflite32):
    _, cfg, folder = trained
    for path, kind in [
        (folder, "keras"),
        (folder / "model.keras", "keras"),
        (folder / "serving", "saved_model"),
        (tflite32, "tflite"),
    ]:
        detector = load_detector(path)
        assert model_format(path) == detector.format == kind
        assert detector.class_names == NAMES and detector.config == cfg


def test_tflite_float32_has_builtin_ops_only_and_the_keras_heads(trained, tflite32):
    model, cfg, _ = trained
    interpreter = tflite_interpreter(tflite32)
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "NON_MAX_SUPPRESSION_V4" in ops
    assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops), ops
    runner = interpreter.get_signature_runner()
    for canvas in canvases(cfg):
        heads = runner(
            images=canvas, score_threshold=np.float32(0.001), iou_threshold=np.float32(0.5)
        )
        for s, want in enumerate(model(canvas)):
            np.testing.assert_allclose(heads[f"scale_{s}"], want.numpy(), atol=1e-4)


@pytest.mark.parametrize("shape", [(50, 90, 3), (64, 64, 3), (100, 40, 3)])
def test_tflite_detections_equal_the_saved_models(trained, tflite32, shape):
    _, _, folder = trained
    served = load_detector(folder / "serving")(image(1, shape), **LOW)
    lite = load_detector(tflite32)(image(1, shape), **LOW)
    assert len(served["scores"]) == len(lite["scores"]) > 5
    np.testing.assert_array_equal(lite["classes"], served["classes"])
    np.testing.assert_allclose(lite["scores"], served["scores"], atol=1e-5)
    np.testing.assert_allclose(lite["boxes"], served["boxes"], atol=1e-3)
    assert np.all(lite["boxes"] >= 0) and np.all(lite["boxes"][:, 2] <= shape[1])


def test_tflite_float16_halves_the_file_and_keeps_the_heads(trained, tflite32, tmp_path):
    model, cfg, _ = trained
    path = export_tflite(
        model, cfg, tmp_path / "half.tflite", class_names=NAMES, quantize="float16"
    )
    assert os.path.getsize(path) < 0.8 * os.path.getsize(tflite32)
    runner = tflite_interpreter(path).get_signature_runner()
    canvas = canvases(cfg, 1)[0]
    heads = runner(images=canvas, score_threshold=np.float32(0.001), iou_threshold=np.float32(0.5))
    for s, want in enumerate(model(canvas)):
        np.testing.assert_allclose(heads[f"scale_{s}"], want.numpy(), atol=2e-2)


@pytest.mark.slow
def test_tflite_int8_quantizes_the_network_but_not_decode_and_nms(trained, tmp_path):
    model, cfg, _ = trained
    calibration = [c[0] for c in canvases(cfg, 8, seed=5)]
    path = export_tflite(
        model, cfg, tmp_path / "int8.tflite", class_names=NAMES, quantize="int8",
        calibration=calibration,
    )  # fmt: skip
    interpreter = tflite_interpreter(path)
    tensors = interpreter.get_tensor_details()
    assert any(t["dtype"] == np.int8 for t in tensors)
    post = [t for t in tensors if t["name"].startswith("postprocess/")]
    assert post and all(t["dtype"] != np.int8 for t in post)
    with pytest.raises(ValueError, match="needs calibration images"):
        export_tflite(model, cfg, tmp_path / "x.tflite", quantize="int8")


def test_onnx_gives_the_keras_heads_and_the_saved_models_detections(trained, tmp_path):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    from kyolo.export.onnx import onnx_session

    model, cfg, folder = trained
    path = export_onnx(model, cfg, tmp_path / "model.onnx", class_names=NAMES)
    session = onnx_session(path)
    thresholds = {k: np.array(v, np.float32) for k, v in LOW.items()}
    for canvas in canvases(cfg, 2):
        heads = session.run(["scale_0", "scale_1"], {"images": canvas, **thresholds})
        for got, want in zip(heads, model(canvas), strict=True):
            np.testing.assert_allclose(got, want.numpy(), atol=1e-4)
    detector = load_detector(path)
    assert detector.class_names == NAMES and detector.format == "onnx"
    got = detector(image(2), **LOW)
    want = load_detector(folder / "serving")(image(2), **LOW)
    np.testing.assert_array_equal(got["classes"], want["classes"])
    np.testing.assert_allclose(got["boxes"], want["boxes"], atol=1e-3)


@pytest.mark.parametrize(
    "name, message",
    [
        ("missing.tflite", "no such file or folder"),
        ("notes.txt", "not a .keras, .tflite, .onnx, SavedModel or run folder"),
        ("empty", "neither a SavedModel nor a training run"),
    ],
)
def test_load_detector_names_what_it_cannot_load(tmp_path, name, message):
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=message):
        load_detector(tmp_path / name)


def test_a_keras_file_without_metadata_is_named(trained, tmp_path):
    model, _, _ = trained
    model.save(tmp_path / "bare.keras")
    with pytest.raises(ValueError, match="bare.keras: no kyolo.json in the archive"):
        load_trained(tmp_path / "bare.keras")


@pytest.mark.parametrize(
    "num_classes, channels",
    [(1, "3·(5 + 1) = 18"), (5, "3·(5 + 5) = 30")],
    ids=["reshapes silently", "reshape error"],
)
def test_a_config_for_another_class_count_is_refused_at_export_and_detect(
    trained, tmp_path, num_classes, channels
):
    # Before: nothing was raised for 1 class (the 24 channels of 3·(5 + 3) reshape into rows of
    # 6: boxes decoded from misaligned channels); a bare reshape error for 5.
    from kyolo.postprocess import detect

    model, _, _ = trained
    wrong = nano_config("yolov5", num_classes, 64)
    message = re.escape(
        f"model output 0 has 24 channels, the config expects A·(5 + C) = {channels}"
    )
    exports = [export_saved_model, export_tflite]
    if importlib.util.find_spec("tf2onnx"):
        exports.append(export_onnx)
    for export in exports:
        with pytest.raises(ValueError, match=message):
            export(model, wrong, tmp_path / "model")
        assert not os.path.exists(tmp_path / "model")
    with pytest.raises(ValueError, match=message):
        detect(model(canvases(wrong, 1)[0]), wrong)
    names = [f"class {i}" for i in range(num_classes)]
    save_model(model, tmp_path / "wrong.keras", cfg=wrong, class_names=names)
    with pytest.raises(ValueError, match=message):
        load_detector(tmp_path / "wrong.keras")(image())
