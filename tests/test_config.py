"""YoloConfig / LossConfig: presets, JSON round trips, validation of inconsistent settings."""

import json

import pytest

from kyolo.config import PRESETS, YOLOV3, YOLOV4, YOLOV5, LossConfig, YoloConfig, preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name):
    cfg = PRESETS[name]
    data = json.loads(json.dumps(cfg.to_dict()))
    assert YoloConfig(**data) == cfg == YoloConfig.from_any(data)
    assert isinstance(YoloConfig(**data).loss, LossConfig)
    assert hash(cfg) == hash(YoloConfig(**data))


def test_preset_lookup():
    assert preset("YOLOv5") is YOLOV5
    assert preset("yolov3-tiny") is PRESETS["yolov3_tiny"]
    assert preset("yolov4", num_classes=3) == YOLOV4.replace(num_classes=3)
    with pytest.raises(ValueError, match="unknown preset"):
        preset("yolov9")


def test_dict_without_new_fields_is_keras_yolo3():
    # Configs saved before assigners and LossConfig existed reload with keras-yolo3 semantics.
    old = {k: v for k, v in YOLOV3.to_dict().items() if k in ("num_classes", "anchors", "masks")}
    assert YoloConfig(**old) == YOLOV3


def test_preset_values_follow_their_sources():
    assert (YOLOV5.loss.box_gain, YOLOV5.loss.obj_gain, YOLOV5.loss.cls_gain) == (0.05, 1.0, 0.5)
    assert (YOLOV5.loss.balance, YOLOV5.anchor_t, YOLOV5.xy_scale(0)) == ((4.0, 1.0, 0.4), 4.0, 2.0)
    assert (YOLOV4.iou_thresh, YOLOV4.loss.ignore_thresh, YOLOV4.loss.box_gain) == (
        0.213,
        0.7,
        0.07,
    )
    assert [YOLOV4.xy_scale(s) for s in range(3)] == [1.2, 1.1, 1.05]
    assert (PRESETS["yolov1"].loss.box_gain, PRESETS["yolov1"].loss.noobj_weight) == (5.0, 0.5)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(assigner="ratio"), "needs ignore_against='image'"),
        (dict(assigner="multi_anchor"), "needs ignore_against='image'"),
        (dict(scale_xy=(1.0, 1.0)), "one value per scale"),
        (dict(loss=LossConfig(balance=(4.0, 1.0))), "one value per scale"),
        (dict(assigner="best"), "assigner must be one of"),
        (dict(anchor_t=1.0), "anchor_t > 1"),
        (dict(scale_xy=0.9, loss=LossConfig(box_loss="ciou")), "scale_xy must be >= 1"),
    ],
)
def test_inconsistent_head_settings_raise(changes, message):
    with pytest.raises(ValueError, match=message):
        YOLOV3.replace(**changes)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(score_loss="mse", focal_gamma=2.0), "use score_loss='bce'"),
        (dict(score_loss="mse", obj_pos_weight="auto"), "use score_loss='bce'"),
        (dict(obj_pos_weight="sometimes"), "could not convert"),
        (dict(ignore_thresh=0.0), "ignore_thresh must be in"),
        (dict(label_smoothing=1.0), "label_smoothing must be in"),
        (dict(noobj_weight=-1.0), "must be >= 0"),
    ],
)
def test_inconsistent_loss_settings_raise(changes, message):
    with pytest.raises(ValueError, match=message):
        LossConfig(**changes)


def test_with_geometry_of_the_yolov3_preset_on_its_own_model_is_the_preset():
    from kyolo.anchors import preset_anchors

    anchors = preset_anchors(YOLOV3, 9, (416, 416))
    assert (
        YOLOV3.with_geometry(
            strides=(32, 16, 8), input_size=(416, 416), num_classes=80, anchors=anchors
        )
        == YOLOV3
    )
    assert (
        YOLOV3.with_geometry(strides=(32, 16, 8), input_size=(416, 416), num_classes=80) == YOLOV3
    )


def test_with_geometry_reorders_per_scale_values_by_stride():
    from kyolo.anchors import preset_anchors

    anchors = preset_anchors(YOLOV5, 9, (416, 416))
    cfg = YOLOV5.with_geometry(
        strides=(32, 16, 8), input_size=(416, 416), num_classes=80, anchors=anchors
    )
    assert cfg.input_size == (416, 416) and cfg.strides == (32, 16, 8)
    assert cfg.masks == ((6, 7, 8), (3, 4, 5), (0, 1, 2))
    assert cfg.loss.balance == tuple(reversed(YOLOV5.loss.balance))
    assert cfg.anchors == tuple((round(w * 416 / 640, 2), round(h * 416 / 640, 2))
                                for w, h in YOLOV5.anchors)  # fmt: skip


def test_with_geometry_on_two_scales_takes_the_smallest_anchors_finest_first():
    anchors = [[4, 5], [6, 8], [10, 14], [16, 20], [24, 30], [34, 40]]
    cfg = YOLOV5.with_geometry(strides=(16, 8), input_size=(64, 96), num_classes=3, anchors=anchors)
    assert cfg.masks == ((3, 4, 5), (0, 1, 2)) and cfg.num_classes == 3
    assert cfg.loss.balance == (1.0, 4.0) and cfg.input_size == (64, 96)
    with pytest.raises(ValueError, match="not for \\[64\\]"):
        YOLOV5.with_geometry(strides=(64,), input_size=(64, 64), num_classes=1, anchors=anchors[:3])
    with pytest.raises(ValueError, match="5 anchors given, the model needs 6"):
        YOLOV5.with_geometry(
            strides=(16, 8), input_size=(64, 64), num_classes=1, anchors=anchors[:5]
        )
    with pytest.raises(ValueError, match="the model needs 6 in 2"):
        YOLOV5.with_geometry(strides=(16, 8), input_size=(64, 64), num_classes=1)


def test_with_overrides_parses_json_values_and_names_bad_items():
    cfg = YOLOV3.with_overrides(["max_boxes=7", "loss.box_loss=ciou", "loss.balance=[1, 2, 3]"])
    assert cfg.max_boxes == 7 and cfg.loss.box_loss == "ciou" and cfg.loss.balance == (1, 2, 3)
    assert YOLOV3.with_overrides(["loss.ignore_thresh=null"]).loss.ignore_thresh is None
    with pytest.raises(ValueError, match="expected FIELD=VALUE"):
        YOLOV3.with_overrides(["max_boxes"])
    with pytest.raises(ValueError, match="--set: .*unexpected keyword argument 'nonsense'"):
        YOLOV3.with_overrides(["nonsense=1"])


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(anchor_t=NAN), "anchor_t must be finite, got nan"),
        (dict(anchor_t=INF), "anchor_t must be finite, got inf"),
        (dict(iou_thresh=NAN), "iou_thresh must be finite, got nan"),
        (dict(scale_xy=NAN), "scale_xy must be finite, got nan"),
        (dict(scale_xy=(1.0, INF, 1.0)), r"scale_xy must be finite, got \(1.0, inf, 1.0\)"),
        (dict(anchors=((10, 13), (NAN, 30)) + YOLOV3.anchors[2:]), r"anchors must be finite, got"),
        (dict(anchors=((10, 13), (16, INF)) + YOLOV3.anchors[2:]), r"\(16.0, inf\)"),
    ],
)
def test_non_finite_head_settings_raise_naming_field_and_value(changes, message):
    # NaN fails every comparison, so the range checks let it through: with anchor_t NaN every
    # box got 0 slots of the ratio assigner.
    with pytest.raises(ValueError, match=message):
        YOLOV3.replace(**changes)


@pytest.mark.parametrize(
    "override, message",
    [
        ("loss.box_gain=NaN", "box_gain must be finite, got nan"),  # JSON's NaN
        ("loss.obj_gain=Infinity", "obj_gain must be finite, got inf"),
        ("loss.cls_gain=-Infinity", "cls_gain must be finite, got -inf"),
        ("loss.noobj_weight=nan", "noobj_weight must be finite, got nan"),  # a string, float()ed
        ("loss.balance=[4.0, NaN, 0.4]", r"balance must be finite, got \(4.0, nan, 0.4\)"),
        ("loss.ignore_thresh=NaN", "ignore_thresh must be finite, got nan"),
        ("loss.label_smoothing=NaN", "label_smoothing must be finite, got nan"),
        ("loss.focal_gamma=Infinity", "focal_gamma must be finite, got inf"),
        ("loss.cls_pos_weight=Infinity", "cls_pos_weight must be finite, got inf"),
        ("loss.obj_pos_weight=NaN", "obj_pos_weight must be finite, got nan"),
        ("loss.ohem_ratio=NaN", "ohem_ratio must be finite, got nan"),
        ("anchor_t=NaN", "anchor_t must be finite, got nan"),
        ("loss.box_gain=-1", "box_gain must be >= 0, got -1.0"),
    ],
)
def test_set_refuses_non_finite_and_out_of_range_values(override, message):
    with pytest.raises(ValueError, match=message):
        YOLOV3.with_overrides([override])
