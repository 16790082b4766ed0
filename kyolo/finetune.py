"""Fine-tuning: pretrained weights onto a freshly built model, frozen layers, two training stages.

    source = read_pretrained("yolov3.keras")     # a .keras archive, or Darknet .weights + its cfg
    report = load_pretrained(model, cfg, source)  # every layer whose name and shapes match
    print(report)                                 # loaded / skipped (with the reason) / unused
    frozen = freeze(model, "backbone")            # after compile: builds the optimizer first
    model.fit(..., callbacks=[Unfreeze(frozen, epoch=5)])

Layers are matched by **name**: kyolo's builders give every layer a deterministic name
(``stem_conv``, ``stage8_block1_2_bn``, ``head0_out_conv``, ``scale_0``, ...), and a Darknet model
converted with ``--kyolo-model`` carries the same names (:mod:`kyolo.darknet.kyolo_models`). A
layer is loaded whole (kernel, BatchNorm statistics, ...) when every weight has the target's
shape, else skipped. The detection convs ``scale_{s}`` are also skipped, keeping their fresh
initialisation, whenever the weights' config says they predict something else: another class
count, other anchors, stride or box decoding (:func:`heads_to_recreate`). Loading nothing at all is
an error, never a silent run from scratch.

Freezing follows keras-yolo3's ``train.py``: train with the body frozen, then every layer at a
tenth of the learning rate (:data:`UNFROZEN_LR_SCALE`, applied by
:class:`kyolo.optim.ScaledAfter`). A frozen ``BatchNormalization`` runs in inference mode (Keras 3
does this when ``trainable=False``): its moving statistics stay those of the pretraining.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from kyolo.config import YoloConfig

UNFROZEN_LR_SCALE = 0.1
"""Learning-rate factor once frozen layers are released (keras-yolo3: 1e-3, then 1e-4)."""

HEAD_PREFIXES = ("head", "scale_")
"""Name prefixes of the layers of kyolo's detection heads (:func:`kyolo.models.darknet.fpn_head`);
every other layer with weights belongs to the backbone."""


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """Weights to fine-tune from: a model holding them and, when known, the config of its heads."""

    model: keras.Model
    config: YoloConfig | None
    path: str


def read_pretrained(
    path: str | os.PathLike,
    *,
    darknet_cfg: str | os.PathLike | None = None,
    kyolo_model: str | None = None,
) -> Pretrained:
    """Read ``path``: a ``.keras`` archive, or a Darknet ``.weights`` file with its ``darknet_cfg``.

    Args:
        path: a ``.keras`` (from ``training.convert`` or a kyolo training run; its ``kyolo.json``
            gives the heads' config, :func:`kyolo.saving.load_metadata`), or ``.weights``.
        darknet_cfg: the Darknet ``.cfg`` of a ``.weights`` file; not allowed with ``.keras``.
        kyolo_model: the model the weights are for. With ``.weights`` and a name of
            :data:`kyolo.darknet.KYOLO_LAYOUTS`, the cfg is mapped onto kyolo's names (as
            ``training.convert --kyolo-model``); otherwise the cfg is built layer for layer.
    Raises:
        ValueError: an unknown extension, a missing or superfluous cfg, a cfg that is not
            ``kyolo_model``'s topology. OSError: unreadable files.
    """
    from kyolo.darknet import KYOLO_LAYOUTS, load_darknet
    from kyolo.saving import load_keras, load_metadata

    path = os.fspath(path)
    extension = os.path.splitext(path)[1]
    if extension == ".keras":
        if darknet_cfg is not None:
            raise ValueError(f"{path}: a Darknet cfg goes with a .weights file, not a .keras")
        model = load_keras(path)
        config = load_metadata(path).get("config")
        return Pretrained(model, None if config is None else YoloConfig.from_any(config), path)
    if extension == ".weights":
        if darknet_cfg is None:
            raise ValueError(f"{path}: a Darknet .weights file needs its .cfg")
        layout = kyolo_model if kyolo_model in KYOLO_LAYOUTS else None
        darknet, _ = load_darknet(darknet_cfg, path, kyolo_model=layout)
        return Pretrained(darknet.model, darknet.config, path)
    raise ValueError(f"{path}: pretrained weights must be a .keras archive or Darknet .weights")


def head_names(cfg: YoloConfig) -> list[str]:
    """Names of the detection convs, one per scale (kyolo's output ``scale_{s}``)."""
    return [f"scale_{s}" for s in range(cfg.num_scales)]


def heads_to_recreate(source: YoloConfig | None, target: YoloConfig) -> dict[str, str]:
    """Detection convs that must keep their fresh initialisation, with the reason.

    Scale ``s`` of ``target`` is compared with scale ``s`` of ``source``: its outputs mean the same
    only with the same classes, stride, anchors (pixels) and box decoding (``decode``,
    ``scale_xy``). The input size does not matter: anchors are in pixels and the model is fully
    convolutional. ``source=None`` (weights without a kyolo config) recreates nothing; shapes are
    still checked by :func:`load_matching_weights`.

    Returns:
        ``{"scale_{s}": reason}`` for the heads to skip.
    """
    if source is None:
        return {}
    reasons = {}
    for s, name in enumerate(head_names(target)):
        if source.num_classes != target.num_classes:
            reasons[name] = f"classes {source.num_classes} → {target.num_classes}"
        elif s >= source.num_scales or source.strides[s] != target.strides[s]:
            reasons[name] = f"strides {source.strides} → {target.strides}"
        elif not np.allclose(source.scale_anchors(s), target.scale_anchors(s)):
            pairs = (np.round(c.scale_anchors(s), 1).tolist() for c in (source, target))
            reasons[name] = "anchors {} → {}".format(*pairs)
        elif (source.decode, source.xy_scale(s)) != (target.decode, target.xy_scale(s)):
            reasons[name] = (
                f"decode {source.decode}, scale_xy {source.xy_scale(s):g} → "
                f"{target.decode}, {target.xy_scale(s):g}"
            )
    return reasons


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What :func:`load_matching_weights` did, per layer with weights of the target model.

    Attributes:
        source: where the weights came from.
        loaded: target layers that now hold the source layer's weights, model order.
        skipped: ``(name, reason)`` of the target layers that kept their initialisation.
        unused: source layers with weights that no target layer took.
    """

    source: str
    loaded: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    unused: tuple[str, ...]

    def __str__(self) -> str:
        total = len(self.loaded) + len(self.skipped)
        lines = [f"{self.source}: loaded {len(self.loaded)} of {total} layers with weights"]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}:")
            lines += [f"  {name}: {reason}" for name, reason in self.skipped]
        if self.unused:
            shown = ", ".join(self.unused[:10]) + (", ..." if len(self.unused) > 10 else "")
            lines.append(f"{len(self.unused)} layers of the weights unused: {shown}")
        return "\n".join(lines)


def _shapes(layer: keras.layers.Layer) -> list[tuple[int, ...]]:
    return [tuple(w.shape) for w in layer.weights]


def load_matching_weights(
    target: keras.Model,
    source: keras.Model,
    *,
    recreate: Mapping[str, str] | None = None,
    source_name: str = "weights",
) -> LoadReport:
    """Copy every layer of ``source`` into the layer of ``target`` with the same name and shapes.

    Args:
        target: the model to fine-tune (built for the new dataset).
        source: the pretrained model.
        recreate: ``{name: reason}`` of target layers not to load (:func:`heads_to_recreate`).
        source_name: how the report names ``source`` (its path).
    Returns:
        the :class:`LoadReport`.
    Raises:
        ValueError: no layer loaded, naming the first layers of both models.
    """
    recreate = recreate or {}
    by_name = {layer.name: layer for layer in source.layers if layer.weights}
    loaded, skipped = [], []
    for layer in target.layers:
        if not layer.weights:
            continue
        match = by_name.get(layer.name)
        if layer.name in recreate:
            skipped.append((layer.name, f"head recreated: {recreate[layer.name]}"))
        elif match is None:
            skipped.append((layer.name, "not in the weights"))
        elif _shapes(match) != _shapes(layer):
            skipped.append((layer.name, f"shapes {_shapes(match)} → {_shapes(layer)}"))
        else:
            layer.set_weights(match.get_weights())
            loaded.append(layer.name)
    if not loaded:
        ours = [layer.name for layer in target.layers if layer.weights][:3]
        theirs = list(by_name)[:3]
        raise ValueError(
            f"{source_name}: no layer matches model {target.name!r} by name and shapes "
            f"(its layers {ours}..., the weights' {theirs}...); a Darknet model converted without "
            "--kyolo-model keeps Darknet's names (conv_0, bn_0, ...): convert it with "
            "--kyolo-model, or pass the matching --model"
        )
    unused = tuple(name for name in by_name if name not in set(loaded))
    return LoadReport(source_name, tuple(loaded), tuple(skipped), unused)


def load_pretrained(model: keras.Model, cfg: YoloConfig, source: Pretrained) -> LoadReport:
    """:func:`load_matching_weights` of ``source`` into ``model`` (built for ``cfg``), with the
    heads that :func:`heads_to_recreate` finds left fresh."""
    return load_matching_weights(
        model,
        source.model,
        recreate=heads_to_recreate(source.config, cfg),
        source_name=source.path,
    )


def backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Layers with weights outside the detection heads (names not in :data:`HEAD_PREFIXES`)."""
    return [
        layer
        for layer in model.layers
        if layer.weights and not layer.name.startswith(HEAD_PREFIXES)
    ]


def body_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer with weights but the detection convs ``scale_{s}`` (keras-yolo3's
    ``freeze_body=2``)."""
    return [
        layer for layer in model.layers if layer.weights and not layer.name.startswith("scale_")
    ]


FREEZE: dict[str, Callable[[keras.Model], list[keras.layers.Layer]]] = {
    "backbone": backbone_layers,
    "body": body_layers,
}
"""``--freeze`` name → the layers it freezes; an integer ``N`` freezes ``model.layers[:N]``."""


def layers_to_freeze(model: keras.Model, spec: str | int) -> list[keras.layers.Layer]:
    """The layers ``spec`` names: a key of :data:`FREEZE`, or ``N`` for the first ``N`` entries of
    ``model.layers`` (keras-yolo3 counts so: the input layer and layers without weights too).

    Raises:
        ValueError: an unknown name, or ``N`` outside ``[1, len(model.layers)]``.
    """
    if isinstance(spec, str) and not spec.isdigit():
        if spec not in FREEZE:
            raise ValueError(f"freeze {spec!r}: give one of {sorted(FREEZE)} or a layer count")
        return FREEZE[spec](model)
    count = int(spec)
    if not 1 <= count <= len(model.layers):
        raise ValueError(f"freeze {count}: the model has {len(model.layers)} layers")
    return list(model.layers[:count])


def set_trainable(model: keras.Model, names: Sequence[str], trainable: bool) -> None:
    """Set ``trainable`` on the layers ``names``; retrace ``fit``'s step if one was made."""
    for name in names:
        model.get_layer(name).trainable = trainable
    if getattr(model, "train_function", None) is not None:
        # Keras traces the trainable variables into the step: a changed set needs a new trace.
        model.make_train_function(force=True)


def freeze(model: keras.Model, spec: str | int) -> list[str]:
    """Freeze the layers ``spec`` names (:func:`layers_to_freeze`); returns their names.

    Call after ``compile``: the optimizer is first built on **all** trainable variables, so that
    :class:`Unfreeze` can release the layers later without a new optimizer (Keras' optimizers only
    update the variables they were built with) and a backup restores the same optimizer state
    before and after the release.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    names = [layer.name for layer in layers_to_freeze(model, spec)]
    set_trainable(model, names, False)
    return names


class Unfreeze(keras.callbacks.Callback):
    """Make ``names`` trainable again at the start of epoch ``epoch`` (0-based) or any later one.

    Idempotent per epoch, so a run resumed after the release (``BackupAndRestore``) releases the
    layers again at its first epoch. Pair it with :class:`kyolo.optim.ScaledAfter` at the same
    step for keras-yolo3's lower learning rate of the second stage.
    """

    def __init__(self, names: Sequence[str], epoch: int) -> None:
        super().__init__()
        self.names = list(names)
        self.epoch = epoch

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        frozen = [n for n in self.names if not self.model.get_layer(n).trainable]
        if epoch >= self.epoch and frozen:
            set_trainable(self.model, frozen, True)
