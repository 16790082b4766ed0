"""Darknet cfg + weights → a Keras model, the library side of ``python -m training.convert``."""

from __future__ import annotations

import os
from collections.abc import Sequence

from kyolo.darknet.build import DarknetModel, build_darknet
from kyolo.darknet.cfg import read_cfg
from kyolo.darknet.kyolo_models import as_kyolo_model
from kyolo.darknet.weights import Header, load_darknet_weights
from kyolo.saving import save_model


def load_darknet(
    cfg_path: str | os.PathLike,
    weights_path: str | os.PathLike | None = None,
    *,
    kyolo_model: str | None = None,
) -> tuple[DarknetModel, Header | None]:
    """The model of a Darknet cfg, with the ``.weights`` loaded when given.

    Args:
        cfg_path: the Darknet ``.cfg``.
        weights_path: its ``.weights``, or None for freshly initialised weights.
        kyolo_model: None builds the cfg layer for layer (:func:`build_darknet`); a name of
            :data:`kyolo.darknet.kyolo_models.KYOLO_LAYOUTS` builds kyolo's own model instead.
    Returns:
        the model with its convs and config, and the weights' header (None without weights).
    """
    darknet = build_darknet(
        read_cfg(cfg_path), name=os.path.splitext(os.path.basename(cfg_path))[0]
    )
    if kyolo_model is not None:
        darknet = as_kyolo_model(darknet, kyolo_model)
    header = None
    if weights_path is not None:
        header = load_darknet_weights(darknet.model, darknet.convs, weights_path)
    return darknet, header


def convert(
    cfg_path: str | os.PathLike,
    weights_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    kyolo_model: str | None = None,
    class_names: Sequence[str] | None = None,
) -> DarknetModel:
    """Write the ``.keras`` model of ``cfg_path`` + ``weights_path`` to ``out_path``.

    The archive holds the config of the ``[yolo]`` sections and the class names (read them back
    with :func:`kyolo.saving.load_metadata`).
    """
    darknet, _ = load_darknet(cfg_path, weights_path, kyolo_model=kyolo_model)
    if class_names is not None and len(class_names) != darknet.config.num_classes:
        raise ValueError(
            f"{len(class_names)} class names for the cfg's {darknet.config.num_classes} classes"
        )
    save_model(darknet.model, out_path, cfg=darknet.config, class_names=class_names)
    return darknet
