"""Property-based tests (hypothesis) of the box ops, the target encoder and the loss.

Invariants, over random boxes, shapes and dtypes: IoU ∈ [0, 1] and the IoU family's ranges and
order; format round trips; every target the encoder writes is one of the input boxes and the
decoder can reach it exactly (decode ∘ encode⁻¹ = identity on every assigned slot); the encoder
ignores input dtypes; the loss is finite and ≥ 0 for any valid targets and logits up to ±1e4.
"""

import functools

import numpy as np
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kyolo import boxes as B
from kyolo.config import PRESETS
from kyolo.decode import decode_xywh
from kyolo.encode import encode_targets
from kyolo.losses import YoloLoss
from kyolo.targets import target_grid
from tests.helpers import head_shapes, nano_config, stack_targets

SETTINGS = settings(max_examples=40, deadline=None)
DTYPES = {np.float16: 2e-3, np.float32: 1e-5, np.float64: 1e-12}
"""dtype → absolute tolerance of the range checks (values are O(1))."""


@st.composite
def box_pairs(draw):
    """Two broadcast-compatible ``(..., 4)`` xywh arrays of one dtype; sizes may be 0."""
    dtype = draw(st.sampled_from(list(DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=4))
    centre = st.floats(-20, 20, width=16)
    size = st.one_of(st.just(0.0), st.floats(0, 20, width=16))

    def boxes():
        xy = draw(hnp.arrays(dtype, (*shape, 2), elements=centre))
        wh = draw(hnp.arrays(dtype, (*shape, 2), elements=size))
        return np.concatenate([xy, wh], axis=-1)

    return boxes(), boxes(), DTYPES[dtype]


@SETTINGS
@given(box_pairs())
def test_iou_family_ranges_order_and_symmetry(pair):
    a, b, tol = pair
    values = {name: getattr(B, name)(a, b).numpy() for name in ("iou", "giou", "diou", "ciou")}
    for name, value in values.items():
        assert value.dtype == a.dtype and value.shape == a.shape[:-1], name
        assert np.all(np.isfinite(value)), name
    iou = values["iou"]
    assert np.all((iou >= -tol) & (iou <= 1 + tol))
    np.testing.assert_allclose(B.iou(b, a).numpy(), iou, atol=tol)
    for name, low in (("giou", -1), ("diou", -1), ("ciou", -1.5)):
        assert np.all((values[name] >= low - tol) & (values[name] <= iou + tol)), name
    assert np.all(values["ciou"] <= values["diou"] + tol)


@SETTINGS
@given(box_pairs())
def test_iou_of_a_box_with_itself_is_one_and_formats_round_trip(pair):
    a, _, tol = pair
    # Corners x ± w/2 round to the dtype's grid at |x|: the error grows with |x| / w. An area below
    # the dtype's smallest normal number underflows (float16: w = h = 1e-5), and IoU is then 0.
    size = np.minimum(a[..., 2], a[..., 3]).astype(np.float64)
    reach = np.abs(a[..., :2]).max(axis=-1) + size
    positive = size**2 > 16 * np.finfo(a.dtype).tiny
    error = np.abs(B.iou(a, a).numpy()[positive] - 1.0)
    eps = np.finfo(a.dtype).eps
    assert np.all(error <= 8 * eps * reach[positive] / size[positive] + tol), error
    back = B.xyxy_to_xywh(B.xywh_to_xyxy(a)).numpy()
    np.testing.assert_allclose(back, a, atol=50 * tol * max(1.0, np.abs(a).max(initial=0)))


@SETTINGS
@given(box_pairs())
def test_iou_family_gradients_are_finite_even_for_zero_area_boxes(pair):
    a, b, _ = pair
    a, b = tf.constant(a, tf.float32), tf.constant(b, tf.float32)
    for name in ("iou", "giou", "diou", "ciou"):
        with tf.GradientTape() as tape:
            tape.watch(a)
            value = tf.reduce_sum(getattr(B, name)(a, b))
        assert np.all(np.isfinite(tape.gradient(value, a).numpy())), name


ASSIGNER_PRESETS = ("yolov3", "yolov4", "yolov5", "yolov2")
"""best_anchor, multi_anchor ("image" layout), ratio (v5 decode), best_anchor_per_scale."""


@functools.cache
def config(name):
    return nano_config(name)


@st.composite
def image_boxes(draw, max_boxes=8):
    """``(boxes (n, 4) float32 normalised xywh, classes (n,) int32)``, valid for the encoder."""
    count = draw(st.integers(0, max_boxes))
    # Subnormal floats are excluded: TF flushes them to zero (1e-45 is encoded as 0).
    centre = st.floats(0, 1, width=32, allow_subnormal=False)
    size = st.floats(1 / 64, 1, width=32)
    boxes = draw(hnp.arrays(np.float32, (count, 2), elements=centre))
    sizes = draw(hnp.arrays(np.float32, (count, 2), elements=size))
    classes = draw(hnp.arrays(np.int32, (count,), elements=st.integers(0, 2)))
    return np.concatenate([boxes, sizes], axis=1), classes


def logit(p):
    return np.log(p) - np.log1p(-p)


def inverse_decode(box, cfg, scale, row, col, anchor):
    """Raw ``(tx, ty, tw, th)`` that :func:`kyolo.decode.decode_xywh` maps to ``box`` at a slot."""
    gh, gw = cfg.grid_size(scale)
    s = cfg.xy_scale(scale)
    offset = np.array([box[0] * gw - col, box[1] * gh - row], np.float64)
    with np.errstate(divide="ignore"):
        t_xy = logit((offset + (s - 1) / 2) / s)
    ratio = (
        box[2:4].astype(np.float64)
        * np.array(cfg.input_size[::-1])
        / np.array(cfg.scale_anchors(scale)[anchor], np.float64)
    )
    t_wh = np.log(ratio) if cfg.decode == "v3" else logit(np.sqrt(ratio) / 2)
    return np.concatenate([t_xy, t_wh])


@SETTINGS
@given(st.sampled_from(ASSIGNER_PRESETS), image_boxes())
def test_every_encoded_target_is_an_input_box_the_decoder_reaches(name, sample):
    cfg = config(name)
    boxes, classes = sample
    targets = encode_targets(boxes, classes, cfg)
    inputs = {tuple(b) for b in boxes}
    assigned = set()
    for scale, target in enumerate(targets):
        grid = target_grid(target[None], cfg).numpy()[0]
        gh, gw = cfg.grid_size(scale)
        grid = grid.reshape(gh, gw, cfg.anchors_per_scale, -1)
        for row, col, anchor in np.argwhere(grid[..., 4] > 0):
            box = grid[row, col, anchor, :4]
            assert tuple(box) in inputs  # the encoder copies boxes, it never invents one
            assigned.add(tuple(box))
            raw = np.zeros((1, gh, gw, cfg.anchors_per_scale, 5 + cfg.num_classes), np.float32)
            raw[0, row, col, anchor, :4] = inverse_decode(box, cfg, scale, row, col, anchor)
            decoded = decode_xywh(tf.constant(raw), cfg, scale).numpy()
            decoded = decoded.reshape(gh, gw, cfg.anchors_per_scale, 4)[row, col, anchor]
            np.testing.assert_allclose(decoded, box, rtol=1e-4, atol=1e-6)
    if len(boxes) and cfg.assigner != "ratio":
        # Anchor-IoU assigners place every box; a later box wins a shared slot, so the last
        # one is always there. (YOLOv5's ratio assigner drops boxes no anchor matches.)
        assert tuple(boxes[-1]) in assigned


@SETTINGS
@given(st.sampled_from(ASSIGNER_PRESETS), image_boxes(), st.sampled_from([np.float16, np.float64]))
def test_encoder_output_does_not_depend_on_input_dtypes(name, sample, dtype):
    cfg = config(name)
    boxes, classes = sample
    boxes = boxes.astype(dtype)  # float16 rounds; the reference is the same rounded values
    want = encode_targets(boxes.astype(np.float32), classes, cfg)
    got = encode_targets(boxes, classes.astype(np.int64), cfg)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == tf.float32
        np.testing.assert_array_equal(g.numpy(), w.numpy())


@functools.cache
def per_image_loss(name):
    cfg = config(name)
    losses = [YoloLoss(cfg, s) for s in range(cfg.num_scales)]

    def total(y_true, y_pred):
        parts = zip(losses, y_true, y_pred, strict=True)
        return tf.add_n([loss.call(y, p) for loss, y, p in parts])

    return tf.function(total)


@SETTINGS
@given(
    st.sampled_from(sorted(PRESETS)),
    st.lists(image_boxes(), min_size=2, max_size=2),
    st.sampled_from([0.1, 1.0, 10.0, 1e4]),
    st.integers(0, 2**31 - 1),
)
def test_loss_is_finite_and_non_negative(name, images, magnitude, seed):
    cfg = config(name)
    y_true = stack_targets(cfg, images)
    rng = np.random.default_rng(seed)
    y_pred = [
        tf.constant(magnitude * rng.standard_normal(shape), tf.float32)
        for shape in head_shapes(cfg, 2)
    ]
    values = per_image_loss(name)(tuple(y_true), tuple(y_pred)).numpy()
    assert values.shape == (2,) and np.all(np.isfinite(values)) and np.all(values >= 0), values
