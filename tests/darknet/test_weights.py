"""Darknet ``.weights``: header versions, layout, exact size, byte-identical round trips."""

import numpy as np
import pytest

from kyolo.darknet import (
    ConvLayer,
    Header,
    build_darknet,
    load_darknet_weights,
    parse_cfg,
    save_darknet_weights,
)
from kyolo.darknet.weights import decode_weights, encode_weights, gamma_scale
from references.darknet_oracle import write_random_weights

BN_CONV = ConvLayer(filters=2, channels=1, size=1, batch_normalize=True, conv="c0", bn="b0")
BIAS_CONV = ConvLayer(filters=1, channels=2, size=3, batch_normalize=False, conv="c1", bn=None)
NET = """
[net]
width=32
height=32
[convolutional]
batch_normalize=1
filters=4
size=3
stride=2
pad=1
activation=leaky
[convolutional]
filters=14
size=1
activation=linear
[yolo]
mask=0,1
anchors=4,5,8,9
classes=2
"""


def i32(*values):
    return np.array(values, "<i4").tobytes()


def f32(*values):
    return np.array(values, "<f4").tobytes()


@pytest.mark.parametrize(
    "version, seen_bytes",
    [
        ((0, 1, 0), i32(7)),
        ((0, 2, 0), np.array([7], "<i8").tobytes()),
        ((1, 0, 3), np.array([7], "<i8").tobytes()),  # 1·10 + 0 >= 2
    ],
)
def test_seen_is_int32_before_version_0_2_and_int64_from_it(version, seen_bytes):
    body = f32(*range(10)) + f32(*range(19))  # BN conv: 4·2 + 2 kernel; 1 bias + 18 kernel
    header, arrays = decode_weights(i32(*version) + seen_bytes + body, [BN_CONV, BIAS_CONV])
    assert header == Header(*version, seen=7)
    assert header.to_bytes() == i32(*version) + seen_bytes


def test_major_1000_or_more_is_the_byte_swap_guard_with_int32_seen():
    assert Header(1000, 2, 0).seen_dtype == np.dtype("<i4")
    assert Header(0, 2, 0).nbytes == 20 and Header(0, 1, 0).nbytes == 16


def test_arrays_are_read_in_darknets_order():
    # BN conv: beta, gamma, mean, variance (2 each), kernel (2, 1, 1, 1); then bias, kernel.
    data = i32(0, 2, 0) + np.array([5], "<i8").tobytes()
    data += f32(1, 2) + f32(3, 4) + f32(5, 6) + f32(7, 8) + f32(9, 10)
    data += f32(11) + f32(*range(100, 118))
    _, (bn, plain) = decode_weights(data, [BN_CONV, BIAS_CONV])
    np.testing.assert_array_equal(bn.bias, [1, 2])
    np.testing.assert_array_equal(np.stack(bn.bn), [[3, 4], [5, 6], [7, 8]])
    np.testing.assert_array_equal(bn.kernel, [[[[9]]], [[[10]]]])
    np.testing.assert_array_equal(plain.bias, [11])
    assert plain.kernel.shape == (1, 2, 3, 3) and plain.kernel[0, 1, 2, 0] == 100 + 9 + 6
    assert encode_weights(Header(0, 2, 0, 5), [bn, plain]) == data


@pytest.mark.parametrize("delta", [-4, 4])
def test_a_file_of_the_wrong_size_names_both_sizes_and_loads_nothing(tmp_path, delta):
    darknet = build_darknet(parse_cfg(NET))
    path = tmp_path / "net.weights"
    write_random_weights(path, darknet.convs)
    data = path.read_bytes()
    path.write_bytes(data[:delta] if delta < 0 else data + bytes(delta))
    before = [w.copy() for w in darknet.model.get_weights()]
    expected = 20 + 4 * (4 * 4 + 4 * 3 * 9 + 14 + 14 * 4)
    assert len(data) == expected
    with pytest.raises(ValueError, match=f"need {expected} bytes .* has {expected + delta}$"):
        load_darknet_weights(darknet.model, darknet.convs, path)
    for a, b in zip(before, darknet.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_read_into_keras_and_written_back_is_byte_identical(tmp_path):
    darknet = build_darknet(parse_cfg(NET))
    header = Header(0, 2, 5, seen=32_013_312_000)  # more than 2³² images: needs the int64
    write_random_weights(tmp_path / "in.weights", darknet.convs, header)
    assert load_darknet_weights(darknet.model, darknet.convs, tmp_path / "in.weights") == header
    save_darknet_weights(darknet.model, darknet.convs, tmp_path / "out.weights", header)
    assert (tmp_path / "out.weights").read_bytes() == (tmp_path / "in.weights").read_bytes()


def test_the_gamma_fold_computes_darknets_bn_within_the_documented_bound():
    rng = np.random.default_rng(0)
    x, mean = rng.normal(size=50), rng.normal(size=50)
    variance = np.concatenate([[0.0, 1e-10], rng.uniform(1e-4, 4, 48)])
    darknet = (x - mean) / (np.sqrt(variance) + 1e-6)  # Darknet's normalize_cpu
    for epsilon in (1e-12, 1e-3):
        keras_bn = gamma_scale(variance, epsilon) * (x - mean) / np.sqrt(variance + epsilon)
        relative = np.abs(keras_bn / darknet - 1)
        assert relative[0] < 1e-12  # exact where the variance is 0
        assert np.all(relative[1:] <= 1e-6 / np.sqrt(variance[1:]))
        assert relative[2:].max() < 1e-4  # variances >= 1e-4, the realistic range
    assert np.all(gamma_scale(variance, 1e-12) == 1.0)  # exactly: the identity map round-trips
