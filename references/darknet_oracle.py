"""Random Darknet weights and OpenCV's Darknet importer as the reference (tests, benchmarks)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from kyolo.darknet import ConvLayer, ConvWeights, Header, write_weights


def random_arrays(convs: Sequence[ConvLayer], seed: int = 0) -> list[ConvWeights]:
    """Darknet arrays with realistic statistics: He-scaled kernels, variances in [0.5, 2]."""
    rng = np.random.default_rng(seed)
    arrays = []
    for conv in convs:
        n, fan_in = conv.filters, conv.channels * conv.size**2
        shape = (n, conv.channels, conv.size, conv.size)
        kernel = rng.normal(0, np.sqrt(2 / fan_in), shape).astype(np.float32)
        bias = rng.normal(0, 0.1, n).astype(np.float32)
        bn = None
        if conv.batch_normalize:
            gamma = rng.uniform(0.5, 1.5, n).astype(np.float32)
            mean = rng.normal(0, 0.1, n).astype(np.float32)
            variance = rng.uniform(0.5, 2.0, n).astype(np.float32)
            bn = (gamma, mean, variance)
        arrays.append(ConvWeights(bias, kernel, bn))
    return arrays


def write_random_weights(
    path: str | os.PathLike, convs: Sequence[ConvLayer], header: Header | None = None, seed: int = 0
) -> None:
    write_weights(path, header or Header(), random_arrays(convs, seed))


def random_images(height: int, width: int, batch: int = 2, seed: int = 1) -> np.ndarray:
    """``(batch, height, width, 3)`` uint8 BGR images, as ``cv2.imread`` gives."""
    return np.random.default_rng(seed).integers(0, 256, (batch, height, width, 3), np.uint8)


def opencv_outputs(cfg_path, weights_path, bgr: np.ndarray, names: Sequence[str]) -> list:
    """OpenCV's outputs of the layers ``names`` (e.g. ``conv_105``) as NHWC float32 arrays.

    The blob is Darknet's input: RGB (``swapRB``) scaled to [0, 1], NCHW.
    """
    import cv2

    net = cv2.dnn.readNetFromDarknet(os.fspath(cfg_path), os.fspath(weights_path))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    height, width = bgr.shape[1:3]
    blob = cv2.dnn.blobFromImages(list(bgr), 1 / 255, (width, height), swapRB=True, crop=False)
    net.setInput(blob)
    return [np.transpose(out, (0, 2, 3, 1)) for out in net.forward(list(names))]


def keras_images(bgr: np.ndarray) -> np.ndarray:
    """The same images as kyolo models take them: RGB float32 in [0, 1], NHWC."""
    return (bgr[..., ::-1] / np.float32(255)).astype(np.float32)


def parity_errors(folder, cfg_text: str, size: tuple[int, int] | None = None, seed: int = 0):
    """Per ``[yolo]`` output: max |kyolo − OpenCV| / max |OpenCV| with random weights.

    ``folder`` receives ``net.cfg`` and ``net.weights``; ``size`` (h, w) defaults to ``[net]``'s.
    """
    from kyolo.darknet import build_darknet, load_darknet_weights, parse_cfg

    cfg_path, weights_path = os.path.join(folder, "net.cfg"), os.path.join(folder, "net.weights")
    with open(cfg_path, "w") as f:
        f.write(cfg_text)
    sections = parse_cfg(cfg_text)
    darknet = build_darknet(sections)
    write_random_weights(weights_path, darknet.convs, seed=seed)
    load_darknet_weights(darknet.model, darknet.convs, weights_path)
    heads = [i for i, s in enumerate(sections[1:]) if s.kind == "yolo"]
    size = size or darknet.config.input_size
    bgr = random_images(*size)
    expected = opencv_outputs(cfg_path, weights_path, bgr, [f"conv_{i - 1}" for i in heads])
    actual = darknet.model(keras_images(bgr))
    actual = actual if isinstance(actual, list | tuple) else [actual]
    errors = []
    for want, got in zip(expected, actual, strict=True):
        assert want.shape == tuple(got.shape), (want.shape, got.shape)
        errors.append(float(np.abs(np.asarray(got) - want).max() / np.abs(want).max()))
    return errors
