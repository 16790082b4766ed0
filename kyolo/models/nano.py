"""``nano``: a small Darknet-style detector for CPU training on 128–160 px inputs."""

from __future__ import annotations

import keras

from kyolo.config import YoloConfig
from kyolo.models.darknet import (
    darknet_conv,
    fpn_head,
    image_input,
    require_strides,
    residual_stage,
)

NANO_STRIDES = ((16, 8), (32, 16), (32, 16, 8))

WIDTH_MULTIPLIERS = {2: 1, 4: 2, 8: 3, 16: 4, 32: 6}
"""Backbone channels at each stride, in units of ``width``."""


def nano(
    cfg: YoloConfig,
    width: int = 16,
    *,
    prior_bias: bool = True,
    weight_decay: float = 0.0,
) -> keras.Model:
    """Darknet-style nano detector: about 0.1–0.3 M params at ``width=16``, C = 10.

    A stride-2 stem conv, then one Darknet stage (stride-2 conv + one residual block) per octave
    down to ``max(cfg.strides)``, and the YOLOv3 top-down head with one 1x1 conv per scale
    (:func:`kyolo.models.darknet.fpn_head` with ``depth=1``). Backbone channels are
    ``width × (1, 2, 3, 4, 6)`` at strides 2..32; the head's 1x1 convs are half the backbone's.

    Args:
        cfg: ``strides`` must be one of ``(16, 8)``, ``(32, 16)``, ``(32, 16, 8)``.
        width: channels of the stem; every other width scales with it.
        prior_bias: initialise output biases with YOLOv5's priors (see ``darknet.prior_bias``).
        weight_decay: L2 factor on every conv kernel, collected in ``model.losses``.
    Returns:
        model from ``(batch, H, W, 3)`` images in [0, 1] to one output ``scale_{s}`` per stride,
        ``(batch, H / stride, W / stride, A · (5 + C))`` raw logits.
    """
    require_strides(cfg, NANO_STRIDES, "nano")
    channels = {stride: width * m for stride, m in WIDTH_MULTIPLIERS.items()}
    images = image_input()
    x = darknet_conv(images, channels[2], 3, strides=2, name="stem", weight_decay=weight_decay)
    features = {}
    stride = 2
    while stride < cfg.strides[0]:
        stride *= 2
        x = residual_stage(x, channels[stride], 1, name=f"stage{stride}", weight_decay=weight_decay)
        features[stride] = x
    outputs = fpn_head(
        [features[s] for s in cfg.strides],
        [channels[s] // 2 for s in cfg.strides],
        cfg,
        depth=1,
        use_prior_bias=prior_bias,
        weight_decay=weight_decay,
    )
    return keras.Model(images, outputs, name="nano")
