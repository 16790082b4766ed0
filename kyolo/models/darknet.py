"""Darknet building blocks shared by every kyolo model.

Each helper takes a Keras tensor and returns one, adding built-in layers only (no ``Lambda``, no
custom layer), so every model reloads with ``keras.saving.load_model(path, safe_mode=True)``.
Layers get deterministic names from the ``name`` argument: ``{name}_conv``, ``{name}_bn``, ...
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np
from keras import layers

from kyolo.config import YoloConfig

LEAKY_SLOPE = 0.1
"""Darknet's leaky ReLU slope."""


def image_input() -> keras.KerasTensor:
    """``(batch, H, W, 3)`` float32 images in [0, 1]; H, W free (multiples of the top stride)."""
    return keras.Input(shape=(None, None, 3), dtype="float32", name="images")


def require_strides(cfg: YoloConfig, supported: Sequence[tuple[int, ...]], model: str) -> None:
    """Raise ``ValueError`` unless ``cfg.strides`` is one of the stride tuples ``model`` builds."""
    if cfg.strides not in supported:
        raise ValueError(
            f"{model} builds strides {' or '.join(map(str, supported))}, got cfg.strides="
            f"{cfg.strides}"
        )


def _l2(weight_decay: float) -> keras.regularizers.Regularizer | None:
    return keras.regularizers.L2(weight_decay) if weight_decay else None


def darknet_conv(
    x: keras.KerasTensor,
    filters: int,
    kernel_size: int,
    *,
    name: str,
    strides: int = 1,
    weight_decay: float = 0.0,
) -> keras.KerasTensor:
    """Darknet convolution: Conv2D (no bias) → BatchNormalization → LeakyReLU(0.1).

    A stride-2 conv pads one pixel on the top and left and convolves ``valid``, as Darknet and
    keras-yolo3 ``resblock_body`` do: TF's ``same`` would pad bottom/right instead, moving every
    output's receptive field one input pixel down-right and breaking Darknet weight parity.

    Args:
        x: ``(batch, h, w, c)`` features.
        filters: output channels.
        kernel_size: square kernel side.
        name: prefix of the layer names.
        strides: 1 or 2.
        weight_decay: L2 factor on the kernel (keras-yolo3 uses 5e-4); 0 for none.
    Returns:
        ``(batch, h / strides, w / strides, filters)`` activations.
    """
    padding = "same"
    if strides == 2:
        x = layers.ZeroPadding2D(((1, 0), (1, 0)), name=f"{name}_pad")(x)
        padding = "valid"
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_regularizer=_l2(weight_decay),
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"{name}_leaky")(x)


def residual_stage(
    x: keras.KerasTensor,
    filters: int,
    num_blocks: int,
    *,
    name: str,
    weight_decay: float = 0.0,
) -> keras.KerasTensor:
    """Darknet-53 stage (keras-yolo3 ``resblock_body``): stride-2 conv, then residual blocks.

    Each block is ``x + conv3x3(filters, conv1x1(filters / 2, x))``.

    Returns:
        ``(batch, h / 2, w / 2, filters)`` features.
    """
    x = darknet_conv(x, filters, 3, strides=2, name=f"{name}_down", weight_decay=weight_decay)
    for i in range(1, num_blocks + 1):
        block = f"{name}_block{i}"
        y = darknet_conv(x, filters // 2, 1, name=f"{block}_1", weight_decay=weight_decay)
        y = darknet_conv(y, filters, 3, name=f"{block}_2", weight_decay=weight_decay)
        x = layers.Add(name=f"{block}_add")([x, y])
    return x


def prior_bias(cfg: YoloConfig, scale: int) -> np.ndarray:
    """Head bias that starts the detector at a sensible prior instead of p = 0.5 everywhere.

    As YOLOv5 (ultralytics/yolov5 ``models/yolo.py``, ``Model._initialize_biases``, after the
    RetinaNet prior of Lin et al. 2017 §3.3): objectness ``log(8 / (H/stride · W/stride))`` (about
    8 objects per image at this scale) and every class ``log(0.6 / (C − 0.99))``; box terms 0.
    The grid is that of ``cfg.input_size``.

    Returns:
        ``(A · (5 + C),)`` float64, laid out as the head's channels: per anchor x, y, w, h, obj,
        classes.
    """
    grid_h, grid_w = cfg.grid_size(scale)
    per_anchor = np.zeros(5 + cfg.num_classes)
    per_anchor[4] = math.log(8 / (grid_h * grid_w))
    per_anchor[5:] = math.log(0.6 / (cfg.num_classes - 0.99))
    return np.tile(per_anchor, cfg.anchors_per_scale)


def detection_output(
    x: keras.KerasTensor,
    cfg: YoloConfig,
    scale: int,
    *,
    use_prior_bias: bool,
    weight_decay: float = 0.0,
) -> keras.KerasTensor:
    """Linear 1x1 conv to the raw logits of ``scale``, named ``scale_{scale}``.

    It computes in float32 under a mixed-precision policy too (Keras' advice for a model's
    outputs): the loss, decoding and NMS then read float32 logits.

    Returns:
        ``(batch, h, w, A · (5 + C))``; reshape to ``(..., A, 5 + C)`` for x, y, w, h, obj, classes.
    """
    bias = prior_bias(cfg, scale).tolist() if use_prior_bias else 0.0
    return layers.Conv2D(
        cfg.anchors_per_scale * (5 + cfg.num_classes),
        1,
        bias_initializer=keras.initializers.Constant(bias),
        kernel_regularizer=_l2(weight_decay),
        dtype="float32",
        name=f"scale_{scale}",
    )(x)


def fpn_head(
    features: Sequence[keras.KerasTensor],
    filters: Sequence[int],
    cfg: YoloConfig,
    *,
    depth: int,
    use_prior_bias: bool,
    weight_decay: float = 0.0,
) -> list[keras.KerasTensor]:
    """YOLOv3 top-down head (keras-yolo3 ``make_last_layers`` and the path of ``yolo_body``).

    For scale ``s`` with width ``f = filters[s]``::

        x = concat(upsample2(conv1x1(f, x)), features[s])   # s > 0 only
        x = depth convs alternating conv1x1(f), conv3x3(2f), ...
        out_s = conv1x1_linear(A(5+C), conv3x3(2f, x))

    keras-yolo3 uses ``depth=5`` for YOLOv3 and ``depth=0`` for tiny YOLOv3.

    Args:
        features: backbone maps in the order of ``cfg.strides`` (deepest first); each one has
            twice the resolution of the one before.
        filters: per scale, the width ``f`` of the 1x1 convs.
        cfg: head geometry.
        depth: convs between the merge and the output branch.
        use_prior_bias: initialise the output bias with :func:`prior_bias`, else zeros.
        weight_decay: L2 factor on every kernel.
    Returns:
        one ``(batch, H / stride, W / stride, A · (5 + C))`` tensor per scale, named ``scale_{s}``.
    """
    outputs = []
    x = features[0]
    for s, (feature, f) in enumerate(zip(features, filters, strict=True)):
        name = f"head{s}"
        if s:
            x = darknet_conv(x, f, 1, name=f"{name}_lateral", weight_decay=weight_decay)
            x = layers.UpSampling2D(2, name=f"{name}_up")(x)
            x = layers.Concatenate(name=f"{name}_concat")([x, feature])
        for i in range(depth):
            kernel, width = (1, f) if i % 2 == 0 else (3, 2 * f)
            conv = f"{name}_conv{i + 1}"
            x = darknet_conv(x, width, kernel, name=conv, weight_decay=weight_decay)
        y = darknet_conv(x, 2 * f, 3, name=f"{name}_out", weight_decay=weight_decay)
        outputs.append(
            detection_output(y, cfg, s, use_prior_bias=use_prior_bias, weight_decay=weight_decay)
        )
    return outputs
