"""Darknet ``.weights`` files: read, write, and move their arrays in and out of Keras layers.

File layout (little-endian): int32 ``major, minor, revision``, then ``seen`` (images trained on) as
int64 when ``major·10 + minor >= 2`` (and both < 1000, Darknet's guard against byte-swapped files),
else int32. Then, per conv in cfg order, float32 arrays: with BN ``beta, gamma, mean, variance``
(``(filters,)`` each), without BN the ``(filters,)`` bias; then the kernel ``(out, in, kh, kw)``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import keras
import numpy as np

from kyolo.darknet.build import DARKNET_BN_EPSILON, ConvLayer
from kyolo.saving import atomic_path

_F32 = np.dtype("<f4")


@dataclasses.dataclass(frozen=True)
class Header:
    """The ``.weights`` header: format version and the number of images trained on."""

    major: int = 0
    minor: int = 2
    revision: int = 0
    seen: int = 0

    @property
    def seen_dtype(self) -> np.dtype:
        wide = self.major * 10 + self.minor >= 2 and self.major < 1000 and self.minor < 1000
        return np.dtype("<i8" if wide else "<i4")

    @property
    def nbytes(self) -> int:
        return 12 + self.seen_dtype.itemsize

    def to_bytes(self) -> bytes:
        version = np.array([self.major, self.minor, self.revision], "<i4").tobytes()
        return version + np.array(self.seen, self.seen_dtype).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Header:
        major, minor, revision = (int(v) for v in np.frombuffer(data, "<i4", 3))
        header = cls(major, minor, revision)
        seen = np.frombuffer(data, header.seen_dtype, 1, offset=12)[0]
        return dataclasses.replace(header, seen=int(seen))


@dataclasses.dataclass(frozen=True)
class ConvWeights:
    """One conv's arrays in Darknet's layout, float32.

    Attributes:
        bias: ``(filters,)`` the conv bias, or BN's beta (offset) with ``batch_normalize``.
        kernel: ``(filters, channels, size, size)``.
        bn: with ``batch_normalize``, ``(gamma, mean, variance)`` each ``(filters,)``; else None.
    """

    bias: np.ndarray
    kernel: np.ndarray
    bn: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def conv_floats(conv: ConvLayer) -> int:
    """Number of float32 values ``conv`` takes in a ``.weights`` file."""
    per_filter = 4 if conv.batch_normalize else 1
    return conv.filters * (per_filter + conv.channels * conv.size**2)


def decode_weights(
    data: bytes, convs: Sequence[ConvLayer], source: str = "weights"
) -> tuple[Header, list[ConvWeights]]:
    """Header and per-conv arrays of ``.weights`` bytes for ``convs`` (in file order).

    Raises:
        ValueError: the size is not exactly what ``convs`` need (naming both byte counts), before
            any array is read: a file for another cfg never loads partly.
    """
    if len(data) < 16:
        raise ValueError(f"{source}: {len(data)} bytes, too short for a Darknet header")
    header = Header.from_bytes(data)
    expected = header.nbytes + _F32.itemsize * sum(conv_floats(c) for c in convs)
    if len(data) != expected:
        raise ValueError(
            f"{source}: the cfg's {len(convs)} convs need {expected} bytes (header "
            f"{header.nbytes}), the file has {len(data)}"
        )
    values = np.frombuffer(data, _F32, offset=header.nbytes)
    arrays, start = [], 0
    for conv in convs:
        n = conv.filters
        vectors = 4 if conv.batch_normalize else 1
        stats = values[start : start + vectors * n].reshape(vectors, n)
        start += vectors * n
        size = n * conv.channels * conv.size**2
        kernel = values[start : start + size].reshape(n, conv.channels, conv.size, conv.size)
        start += size
        bn = (stats[1], stats[2], stats[3]) if conv.batch_normalize else None
        arrays.append(ConvWeights(stats[0], kernel, bn))
    return header, arrays


def encode_weights(header: Header, arrays: Sequence[ConvWeights]) -> bytes:
    """``.weights`` bytes of ``header`` and the arrays (the inverse of :func:`decode_weights`)."""
    parts = [header.to_bytes()]
    for weights in arrays:
        for array in (weights.bias, *(weights.bn or ()), weights.kernel):
            parts.append(np.ascontiguousarray(array, _F32).tobytes())
    return b"".join(parts)


def read_weights(
    path: str | os.PathLike, convs: Sequence[ConvLayer]
) -> tuple[Header, list[ConvWeights]]:
    """:func:`decode_weights` of the file at ``path``."""
    with open(path, "rb") as f:
        return decode_weights(f.read(), convs, source=os.fspath(path))


def write_weights(path: str | os.PathLike, header: Header, arrays: Sequence[ConvWeights]) -> None:
    """Write :func:`encode_weights` to ``path``, replacing it whole or not at all."""
    with atomic_path(path) as temp, open(temp, "wb") as f:
        f.write(encode_weights(header, arrays))


def gamma_scale(variance: np.ndarray, epsilon: float) -> np.ndarray:
    """Factor from Darknet's gamma to that of a Keras BN with ``epsilon`` computing the same.

    Keras divides by ``sqrt(var + epsilon)``; the factor ``sqrt(var + ε) / sqrt(var + ε₀)`` with
    ε₀ = :data:`DARKNET_BN_EPSILON` (see there) moves the difference into gamma, so the variance is
    kept as read. It is exactly 1 at ε = ε₀ (the models :func:`build_darknet` makes), where the
    arrays pass through unchanged and a write back is byte-identical.
    """
    variance = np.asarray(variance, np.float64)
    return np.sqrt(variance + epsilon) / np.sqrt(variance + DARKNET_BN_EPSILON)


def set_conv_weights(model: keras.Model, conv: ConvLayer, weights: ConvWeights) -> None:
    """Put one conv's Darknet arrays into ``model``'s layers ``conv.conv`` and ``conv.bn``."""
    layer = model.get_layer(conv.conv)
    kernel = weights.kernel.transpose(2, 3, 1, 0)  # (out, in, kh, kw) → Keras (kh, kw, in, out)
    if weights.bn is None:
        layer.set_weights([kernel, weights.bias])
        return
    layer.set_weights([kernel])
    bn = model.get_layer(conv.bn)
    gamma, mean, variance = weights.bn
    gamma = (gamma * gamma_scale(variance, bn.epsilon)).astype(np.float32)
    bn.set_weights([gamma, weights.bias, mean, variance])


def get_conv_weights(model: keras.Model, conv: ConvLayer) -> ConvWeights:
    """One conv's Darknet arrays from ``model`` (the inverse of :func:`set_conv_weights`)."""
    kernel, *bias = model.get_layer(conv.conv).get_weights()
    kernel = kernel.transpose(3, 2, 0, 1)
    if conv.bn is None:
        return ConvWeights(bias[0], kernel)
    bn = model.get_layer(conv.bn)
    gamma, beta, mean, variance = bn.get_weights()
    gamma = (gamma / gamma_scale(variance, bn.epsilon)).astype(np.float32)
    return ConvWeights(beta, kernel, (gamma, mean, variance))


def check_layers(model: keras.Model, convs: Sequence[ConvLayer]) -> None:
    """Raise ``ValueError`` unless each of ``model``'s ``convs`` has the kernel and bias it says."""
    for conv in convs:
        layer = model.get_layer(conv.conv)
        expected = (conv.size, conv.size, conv.channels, conv.filters)
        has_bn = conv.bn is not None and isinstance(
            model.get_layer(conv.bn), keras.layers.BatchNormalization
        )
        if tuple(layer.kernel.shape) != expected or layer.use_bias == has_bn:
            raise ValueError(
                f"layer {conv.conv}: kernel {tuple(layer.kernel.shape)}, bias {layer.use_bias}; "
                f"the Darknet conv has kernel {expected}, "
                + ("batch norm" if conv.batch_normalize else "a bias")
            )


def load_darknet_weights(
    model: keras.Model, convs: Sequence[ConvLayer], path: str | os.PathLike
) -> Header:
    """Read the ``.weights`` file at ``path`` into ``model``'s ``convs``; returns its header.

    Every array is checked against its layer before the first is assigned, so a mismatch leaves
    ``model`` untouched.
    """
    header, arrays = read_weights(path, convs)
    check_layers(model, convs)
    for conv, weights in zip(convs, arrays, strict=True):
        set_conv_weights(model, conv, weights)
    return header


def save_darknet_weights(
    model: keras.Model,
    convs: Sequence[ConvLayer],
    path: str | os.PathLike,
    header: Header = Header(),
) -> None:
    """Write ``model``'s ``convs`` as a Darknet ``.weights`` file with ``header``."""
    write_weights(path, header, [get_conv_weights(model, conv) for conv in convs])


__all__ = [
    "ConvWeights",
    "check_layers",
    "Header",
    "conv_floats",
    "decode_weights",
    "encode_weights",
    "gamma_scale",
    "get_conv_weights",
    "load_darknet_weights",
    "read_weights",
    "save_darknet_weights",
    "set_conv_weights",
    "write_weights",
]
