"""Keras 3 functional models built section by section from a parsed Darknet cfg.

Darknet layer ``i`` (the ``i``-th section after ``[net]``) becomes Keras layers named ``conv_{i}``,
``bn_{i}``, ``{activation}_{i}``, ``pad_{i}``, ``shortcut_{i}``, ``route_{i}``, ``upsample_{i}``,
``maxpool_{i}`` (OpenCV's Darknet importer uses the same ``conv_{i}`` names). Built-in layers only,
so the model reloads with ``keras.saving.load_model(path, safe_mode=True)``. Each ``[yolo]`` section
becomes an ``Identity`` layer named ``scale_{s}`` (``s``: its rank among the ``[yolo]`` sections)
whose output is the raw logits of the conv before it, as every kyolo model outputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import keras
from keras import layers

from kyolo.config import LossConfig, YoloConfig
from kyolo.darknet.cfg import Section
from kyolo.models.darknet import LEAKY_SLOPE

DARKNET_BN_EPSILON = 1e-12
"""Keras ``BatchNormalization`` epsilon that stands for Darknet's normalisation.

Darknet divides by ``sqrt(var) + 1e-6``, Keras by ``sqrt(var + ε)``. With ε = (1e-6)² the two agree
exactly at ``var = 0`` and differ by less than 1e-6 in the denominator everywhere (relative error
< 1e-6 / sqrt(var)), while the variance is stored unchanged: a ``.weights`` file read into the model
and written back is byte-identical. (Keras' default ε = 1e-3 would be off by ~5e-4 relative.)
"""


@dataclasses.dataclass(frozen=True)
class ConvLayer:
    """One Darknet conv as the ``.weights`` file lays it out, and the Keras layers that hold it.

    Attributes:
        filters, channels, size: output channels, input channels, square kernel side.
        batch_normalize: the file holds BN beta, gamma, mean, variance (else a conv bias).
        conv: name of the Keras ``Conv2D`` (with a bias exactly when not ``batch_normalize``).
        bn: name of the Keras ``BatchNormalization``, ``None`` without BN.
    """

    filters: int
    channels: int
    size: int
    batch_normalize: bool
    conv: str
    bn: str | None


@dataclasses.dataclass(frozen=True)
class DarknetModel:
    """A built cfg: the Keras model, its convs in file order and the ``[yolo]`` heads' config."""

    model: keras.Model
    convs: tuple[ConvLayer, ...]
    config: YoloConfig


@dataclasses.dataclass(frozen=True)
class _Head:
    section: Section
    stride: int
    output: keras.KerasTensor


class _Graph:
    """Outputs of the layers built so far: ``(tensor, stride in input pixels)`` per index."""

    def __init__(self, images: keras.KerasTensor) -> None:
        self.images = images
        self.outputs: list[tuple[keras.KerasTensor, int]] = []
        self.convs: list[ConvLayer] = []
        self.heads: list[_Head] = []

    @property
    def index(self) -> int:
        """Darknet index of the layer being built."""
        return len(self.outputs)

    def previous(self) -> tuple[keras.KerasTensor, int]:
        return self.outputs[-1] if self.outputs else (self.images, 1)

    def layer(self, section: Section, key: str, offset: int) -> tuple[keras.KerasTensor, int]:
        """Output of the layer ``offset`` names: relative when negative, absolute otherwise."""
        target = self.index + offset if offset < 0 else offset
        if not 0 <= target < self.index:
            raise section.error(f"{key}={offset} names layer {target}, not one before it", key)
        return self.outputs[target]


ACTIVATIONS: dict[str, Callable[[str], layers.Layer]] = {
    "leaky": lambda name: layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=name),
    "relu": lambda name: layers.ReLU(name=name),
    "logistic": lambda name: layers.Activation("sigmoid", name=name),
    "mish": lambda name: layers.Activation("mish", name=name),
    "swish": lambda name: layers.Activation("silu", name=name),
}
"""Darknet activation → Keras layer factory; ``linear`` adds no layer."""


def _activate(
    x: keras.KerasTensor, section: Section, index: int, default: str
) -> keras.KerasTensor:
    name = section.get_str("activation", default)
    if name == "linear":
        return x
    if name not in ACTIVATIONS:
        raise section.error(
            f"activation={name}: kyolo builds linear, {', '.join(ACTIVATIONS)}", "activation"
        )
    return ACTIVATIONS[name](f"{name}_{index}")(x)


def _positive(section: Section, key: str, default: int | None = None) -> int:
    value = section.get_int(key, default)
    if value < 1:
        raise section.error(f"{key}={value}: must be >= 1", key)
    return value


def _convolutional(section: Section, graph: _Graph) -> tuple[keras.KerasTensor, int]:
    """Darknet conv: output side ``(w + 2·pad − size) // stride + 1``, window ``i`` starting at
    ``stride·i − pad``, which symmetric zero padding then a ``valid`` conv reproduces exactly."""
    x, stride = graph.previous()
    i = graph.index
    filters = _positive(section, "filters")
    size = _positive(section, "size", 1)
    step = _positive(section, "stride", 1)
    pad = size // 2 if section.get_int("pad", 0) else section.get_int("padding", 0)
    if pad < 0:
        raise section.error(f"padding={pad}: must be >= 0", "padding")
    if section.get_int("groups", 1) != 1:
        raise section.error("groups: kyolo builds groups=1 only", "groups")
    batch_normalize = bool(section.get_int("batch_normalize", 0))
    padding = "valid"
    if step == 1 and 2 * pad == size - 1:
        padding = "same"  # the same windows, without a padding layer
    elif pad:
        x = layers.ZeroPadding2D(pad, name=f"pad_{i}")(x)
    conv = layers.Conv2D(
        filters, size, strides=step, padding=padding, use_bias=not batch_normalize, name=f"conv_{i}"
    )
    bn = f"bn_{i}" if batch_normalize else None
    graph.convs.append(ConvLayer(filters, x.shape[-1], size, batch_normalize, conv.name, bn))
    x = conv(x)
    if batch_normalize:
        x = layers.BatchNormalization(epsilon=DARKNET_BN_EPSILON, name=bn)(x)
    # Darknet's default activation of a conv is logistic.
    return _activate(x, section, i, "logistic"), stride * step


def _shortcut(section: Section, graph: _Graph) -> tuple[keras.KerasTensor, int]:
    """``previous + layer[from]``, then the activation (linear by default)."""
    x, stride = graph.previous()
    (offset,) = section.get_ints("from")
    y, other = graph.layer(section, "from", offset)
    if y.shape[-1] != x.shape[-1] or other != stride:
        raise section.error(
            f"from={offset}: adds {tuple(y.shape[1:])} at stride {other} to "
            f"{tuple(x.shape[1:])} at stride {stride}; kyolo needs equal shapes",
            "from",
        )
    x = layers.Add(name=f"shortcut_{graph.index}")([x, y])
    return _activate(x, section, graph.index, "linear"), stride


def _route(section: Section, graph: _Graph) -> tuple[keras.KerasTensor, int]:
    """The listed layers' outputs concatenated on channels, in the order listed."""
    offsets = section.get_ints("layers")
    if not 1 <= len(offsets) <= 4:
        raise section.error(f"layers: routes 1 to 4 layers, got {len(offsets)}", "layers")
    sources = [graph.layer(section, "layers", offset) for offset in offsets]
    strides = {stride for _, stride in sources}
    if len(strides) != 1:
        raise section.error(f"layers={offsets}: different strides {sorted(strides)}", "layers")
    if len(sources) == 1:
        return sources[0]
    x = layers.Concatenate(name=f"route_{graph.index}")([x for x, _ in sources])
    return x, strides.pop()


def _upsample(section: Section, graph: _Graph) -> tuple[keras.KerasTensor, int]:
    x, stride = graph.previous()
    factor = _positive(section, "stride", 2)
    if stride % factor:
        raise section.error(f"stride={factor} upsamples a stride-{stride} map", "stride")
    x = layers.UpSampling2D(factor, interpolation="nearest", name=f"upsample_{graph.index}")(x)
    return x, stride // factor


def _maxpool(section: Section, graph: _Graph) -> tuple[keras.KerasTensor, int]:
    """Darknet max pool: ``padding`` (default ``size − 1``) cells of −∞, ``padding // 2`` of them
    before; output side ``(w + padding − size) // stride + 1``.

    Keras' ``same`` pooling takes the same windows for stride 1 with the default padding (SPP's
    sizes 5, 9, 13 and tiny YOLOv3's size 2) and for size = stride = 2; other cases are refused.
    """
    x, stride = graph.previous()
    step = _positive(section, "stride", 1)
    size = _positive(section, "size", step)
    padding = section.get_int("padding", size - 1)
    if not (padding == size - 1 and (step == 1 or size == step == 2)):
        raise section.error(
            f"size={size} stride={step} padding={padding}: kyolo builds stride 1 with padding = "
            "size - 1, or size = stride = 2"
        )
    x = layers.MaxPooling2D(size, strides=step, padding="same", name=f"maxpool_{graph.index}")(x)
    return x, stride * step


def _yolo(section: Section, graph: _Graph) -> tuple[keras.KerasTensor, int]:
    x, stride = graph.previous()
    x = layers.Identity(name=f"scale_{len(graph.heads)}")(x)
    graph.heads.append(_Head(section, stride, x))
    return x, stride


BUILDERS: dict[str, Callable[[Section, _Graph], tuple[keras.KerasTensor, int]]] = {
    "convolutional": _convolutional,
    "shortcut": _shortcut,
    "route": _route,
    "upsample": _upsample,
    "maxpool": _maxpool,
    "yolo": _yolo,
}


def _same(heads: Sequence[_Head], key: str, read: Callable[[Section], object]) -> object:
    """The value of ``key`` every ``[yolo]`` section shares; an error at the first that differs."""
    first = read(heads[0].section)
    for head in heads[1:]:
        if read(head.section) != first:
            raise head.section.error(f"{key} differs from the first [yolo] section's", key)
    return first


def _yolo_config(heads: Sequence[_Head], input_size: tuple[int, int]) -> YoloConfig:
    """The :class:`YoloConfig` of the ``[yolo]`` sections (anchors, masks, classes, strides, ...).

    ``ignore_thresh`` (default 0.5) and the classes and anchors must agree across sections.
    ``scale_x_y`` becomes ``scale_xy``; ``iou_loss`` = giou/diou/ciou selects that box loss, else
    the box loss is keras-yolo3's, or ``"mse"`` where ``scale_x_y`` ≠ 1 (keras-yolo3's loss
    assumes 1).
    """
    first = heads[0].section
    values = _same(heads, "anchors", lambda s: s.get_floats("anchors"))
    classes = _same(heads, "classes", lambda s: s.get_int("classes", 20))
    ignore = _same(heads, "ignore_thresh", lambda s: s.get_float("ignore_thresh", 0.5))
    iou_loss = _same(heads, "iou_loss", lambda s: s.get_str("iou_loss", "mse"))
    if len(values) % 2 or len(values) // 2 != first.get_int("num", len(values) // 2):
        raise first.error(f"anchors: {len(values)} numbers for num={first.get_int('num')}")
    anchors = list(zip(values[::2], values[1::2], strict=True))
    masks = [head.section.get_ints("mask", list(range(len(anchors)))) for head in heads]
    scale_xy = tuple(head.section.get_float("scale_x_y", 1.0) for head in heads)
    if iou_loss in ("giou", "diou", "ciou"):
        box_loss = iou_loss
    else:
        box_loss = "keras_yolo3" if set(scale_xy) == {1.0} else "mse"
    try:
        return YoloConfig(
            num_classes=classes,
            input_size=input_size,
            anchors=anchors,
            masks=masks,
            strides=[head.stride for head in heads],
            scale_xy=scale_xy[0] if len(set(scale_xy)) == 1 else scale_xy,
            loss=LossConfig(box_loss=box_loss, ignore_thresh=ignore),
        )
    except ValueError as err:
        raise first.error(str(err)) from None


def build_darknet(sections: Sequence[Section], *, name: str = "darknet") -> DarknetModel:
    """Build the Keras model of parsed cfg ``sections`` (``[net]`` first), layer by layer.

    The model maps ``(batch, H, W, channels)`` float32 RGB images in [0, 1] (Darknet's input) to
    one output per ``[yolo]`` section in cfg order, ``scale_{s}`` of shape
    ``(batch, H / stride, W / stride, A · (5 + C))``: the raw logits of the conv before it. The
    input is free in size (any multiple of the largest stride); the config's ``input_size`` is
    ``[net]``'s ``height, width``.

    Raises:
        CfgError: a section kyolo cannot build exactly, naming its line.
    """
    net = sections[0]
    input_size = (_positive(net, "height"), _positive(net, "width"))
    channels = _positive(net, "channels", 3)
    images = keras.Input(shape=(None, None, channels), dtype="float32", name="images")
    graph = _Graph(images)
    for section in sections[1:]:
        graph.outputs.append(BUILDERS[section.kind](section, graph))
    if not graph.heads:
        raise net.error("no [yolo] section: kyolo needs at least one output")
    config = _yolo_config(graph.heads, input_size)
    want = config.anchors_per_scale * (5 + config.num_classes)
    for head in graph.heads:
        if head.output.shape[-1] != want:
            raise head.section.error(
                f"the layer before it has {head.output.shape[-1]} channels, "
                f"needs len(mask) * (5 + classes) = {want}"
            )
    model = keras.Model(images, [head.output for head in graph.heads], name=name)
    return DarknetModel(model, tuple(graph.convs), config)
