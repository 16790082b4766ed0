"""YOLOv3 and tiny YOLOv3, layer for layer as qqwweee/keras-yolo3 ``yolo3/model.py``.

``yolov3`` is ``yolo_body`` (Darknet-53 from ``darknet_body`` + three ``make_last_layers`` heads)
and ``yolov3_tiny`` is ``tiny_yolo_body``. Both keep keras-yolo3's defaults: L2 5e-4 on every
kernel and zero-initialised output biases (``prior_bias=False``).
"""

from __future__ import annotations

import keras
from keras import layers

from kyolo.config import YoloConfig
from kyolo.models.darknet import (
    darknet_conv,
    fpn_head,
    image_input,
    require_strides,
    residual_stage,
)

KERAS_YOLO3_WEIGHT_DECAY = 5e-4

DARKNET53_STAGES = ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4))
"""``(filters, residual blocks)`` of each stride-2 stage of Darknet-53 (52 convs in all)."""


def darknet53(images: keras.KerasTensor, *, weight_decay: float = 0.0) -> list[keras.KerasTensor]:
    """Darknet-53 body (keras-yolo3 ``darknet_body``).

    Returns:
        features at strides 32, 16, 8 (1024, 512, 256 channels): the last stage output and
        keras-yolo3's ``darknet.layers[152]`` and ``darknet.layers[92]``.
    """
    x = darknet_conv(images, 32, 3, name="stem", weight_decay=weight_decay)
    features = []
    for i, (filters, blocks) in enumerate(DARKNET53_STAGES, start=1):
        x = residual_stage(x, filters, blocks, name=f"stage{i}", weight_decay=weight_decay)
        features.append(x)
    return features[2:][::-1]


def yolov3(
    cfg: YoloConfig,
    *,
    prior_bias: bool = False,
    weight_decay: float = KERAS_YOLO3_WEIGHT_DECAY,
) -> keras.Model:
    """YOLOv3 (Redmon & Farhadi 2018) as keras-yolo3 ``yolo_body``: 62,001,757 params at C = 80.

    Args:
        cfg: needs ``strides == (32, 16, 8)``.
        prior_bias: initialise output biases with YOLOv5's priors (see ``darknet.prior_bias``).
        weight_decay: L2 factor on every conv kernel, collected in ``model.losses``.
    Returns:
        model from ``(batch, H, W, 3)`` images in [0, 1] to outputs ``scale_0..2`` of shape
        ``(batch, H / stride, W / stride, A · (5 + C))`` raw logits.
    """
    require_strides(cfg, [(32, 16, 8)], "yolov3")
    images = image_input()
    features = darknet53(images, weight_decay=weight_decay)
    outputs = fpn_head(
        features,
        (512, 256, 128),
        cfg,
        depth=5,
        use_prior_bias=prior_bias,
        weight_decay=weight_decay,
    )
    return keras.Model(images, outputs, name="yolov3")


def _conv_pool(
    x: keras.KerasTensor, filters: int, pool_strides: int, *, name: str, weight_decay: float
) -> keras.KerasTensor:
    x = darknet_conv(x, filters, 3, name=name, weight_decay=weight_decay)
    return layers.MaxPooling2D(2, strides=pool_strides, padding="same", name=f"{name}_pool")(x)


def yolov3_tiny(
    cfg: YoloConfig,
    *,
    prior_bias: bool = False,
    weight_decay: float = KERAS_YOLO3_WEIGHT_DECAY,
) -> keras.Model:
    """Tiny YOLOv3 as keras-yolo3 ``tiny_yolo_body``: 8,858,734 params at C = 80.

    Args:
        cfg: needs ``strides == (32, 16)``.
        prior_bias, weight_decay: as :func:`yolov3`.
    Returns:
        model with outputs ``scale_0`` (stride 32) and ``scale_1`` (stride 16).
    """
    require_strides(cfg, [(32, 16)], "yolov3_tiny")
    images = image_input()
    x = images
    for i, filters in enumerate((16, 32, 64, 128), start=1):
        x = _conv_pool(x, filters, 2, name=f"conv{i}", weight_decay=weight_decay)
    stride16 = darknet_conv(x, 256, 3, name="conv5", weight_decay=weight_decay)
    x = layers.MaxPooling2D(2, strides=2, padding="same", name="conv5_pool")(stride16)
    # Darknet's stride-1 pool keeps the stride-32 grid while mixing in the next row and column.
    x = _conv_pool(x, 512, 1, name="conv6", weight_decay=weight_decay)
    x = darknet_conv(x, 1024, 3, name="conv7", weight_decay=weight_decay)
    stride32 = darknet_conv(x, 256, 1, name="conv8", weight_decay=weight_decay)
    outputs = fpn_head(
        (stride32, stride16),
        (256, 128),
        cfg,
        depth=0,
        use_prior_bias=prior_bias,
        weight_decay=weight_decay,
    )
    return keras.Model(images, outputs, name="yolov3_tiny")
