"""Darknet ``.cfg`` files: parse them into sections and write sections back as text.

A cfg is a list of ``[section]`` headers, each followed by ``key = value`` lines. ``#`` and ``;``
start a comment anywhere on a line; blank lines and spaces around ``=`` are ignored. Only the
sections and keys of :data:`SCHEMA` are accepted: anything else is a :class:`CfgError` naming the
line (and the file), so a cfg that kyolo cannot build exactly is refused instead of built wrong.

Keys that only steer Darknet's training or data augmentation are accepted and ignored (they have
no effect on the network's forward pass): :data:`NET_IGNORED` in ``[net]`` and
:data:`YOLO_IGNORED` in ``[yolo]``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping

NET_IGNORED = frozenset(
    {
        "batch", "subdivisions", "momentum", "decay", "angle", "saturation", "exposure", "hue",
        "learning_rate", "burn_in", "max_batches", "policy", "steps", "scales", "power", "mosaic",
        "flip", "letter_box", "mixup", "cutmix", "blur", "gaussian_noise", "aspect", "jitter",
        "max_chart_loss", "min_crop", "max_crop",
    }
)  # fmt: skip
"""``[net]`` keys of the solver and of data augmentation; only width, height, channels count."""

YOLO_IGNORED = frozenset(
    {
        "jitter", "random", "resize", "truth_thresh", "iou_thresh", "iou_normalizer",
        "cls_normalizer", "obj_normalizer", "nms_kind", "beta_nms", "max_delta", "max",
        "label_smooth_eps", "counters_per_class",
    }
)  # fmt: skip
"""``[yolo]`` keys of Darknet's loss, augmentation and NMS, which kyolo configures itself."""

SCHEMA: dict[str, frozenset[str]] = {
    "net": NET_IGNORED | {"width", "height", "channels"},
    "convolutional": frozenset(
        {"batch_normalize", "filters", "size", "stride", "pad", "padding", "groups", "activation"}
    ),
    "shortcut": frozenset({"from", "activation"}),
    "route": frozenset({"layers"}),
    "upsample": frozenset({"stride"}),
    "maxpool": frozenset({"size", "stride", "padding"}),
    "yolo": YOLO_IGNORED
    | {"mask", "anchors", "classes", "num", "ignore_thresh", "scale_x_y", "iou_loss"},
}
"""Accepted keys of each accepted section kind."""

ALIASES = {"network": "net", "conv": "convolutional", "max": "maxpool"}
"""Darknet's other names of sections (``string_to_layer_type`` in its ``parser.c``)."""

_HEADER = re.compile(r"\[\s*([A-Za-z_]+)\s*\]")


class CfgError(ValueError):
    """A cfg problem, as ``"<file>:<line>: <message>"`` (``"line <n>: ..."`` without a file)."""

    def __init__(self, message: str, line: int, source: str | None = None) -> None:
        where = f"{source}:{line}" if source else f"line {line}"
        super().__init__(f"{where}: {message}")
        self.line = line
        self.source = source


@dataclasses.dataclass(frozen=True)
class Section:
    """One ``[kind]`` section: its options as text, with the line each was read from.

    The typed getters raise :class:`CfgError` naming the option's line when a value does not
    parse, and return ``default`` when the key is absent (``None`` default: the key is required).
    """

    kind: str
    line: int
    options: dict[str, tuple[str, int]]
    source: str | None = None

    def error(self, message: str, key: str | None = None) -> CfgError:
        line = self.options[key][1] if key in self.options else self.line
        return CfgError(f"[{self.kind}] {message}", line, self.source)

    def _get(self, key: str, default: object, parse: type) -> object:
        if key not in self.options:
            if default is None:
                raise self.error(f"needs {key}=")
            return default
        text = self.options[key][0]
        try:
            values = [parse(v) for v in text.split(",")]
        except ValueError:
            raise self.error(f"{key}={text}: not {parse.__name__} value(s)", key) from None
        return values

    def get_int(self, key: str, default: int | None = None) -> int:
        return self._scalar(key, default, int)

    def get_float(self, key: str, default: float | None = None) -> float:
        return self._scalar(key, default, float)

    def get_ints(self, key: str, default: list[int] | None = None) -> list[int]:
        return self._get(key, default, int)

    def get_floats(self, key: str, default: list[float] | None = None) -> list[float]:
        return self._get(key, default, float)

    def get_str(self, key: str, default: str | None = None) -> str:
        if key in self.options:
            return self.options[key][0]
        if default is None:
            raise self.error(f"needs {key}=")
        return default

    def _scalar(self, key: str, default: object, parse: type) -> object:
        values = self._get(key, None if default is None else [default], parse)
        if len(values) != 1:
            raise self.error(f"{key}: expected one value, got {len(values)}", key)
        return values[0]


def parse_cfg(text: str, source: str | None = None) -> list[Section]:
    """Sections of cfg ``text`` in file order, ``[net]`` included; ``source`` names it in errors.

    Raises:
        CfgError: an unknown section or key, a key outside a section or given twice, a line that
            is neither a header nor ``key=value``, or a file without ``[net]`` first.
    """
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.split(r"[#;]", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        header = _HEADER.fullmatch(line)
        if header:
            kind = header.group(1).lower()
            kind = ALIASES.get(kind, kind)
            if kind not in SCHEMA:
                raise CfgError(
                    f"unknown section [{kind}]; kyolo builds {', '.join(SCHEMA)}", number, source
                )
            sections.append(Section(kind, number, {}, source))
            continue
        key, equals, value = (part.strip() for part in line.partition("="))
        if not equals or not key or not value:
            raise CfgError(f"expected [section] or key=value, got {raw.strip()!r}", number, source)
        if not sections:
            raise CfgError(f"{key}= before the first [section]", number, source)
        section = sections[-1]
        if key not in SCHEMA[section.kind]:
            raise CfgError(f"unknown key {key!r} in [{section.kind}]", number, source)
        if key in section.options:
            raise CfgError(f"{key}= given twice in [{section.kind}]", number, source)
        section.options[key] = (value, number)
    if not sections or sections[0].kind != "net":
        raise CfgError("a cfg must start with [net]", sections[0].line if sections else 1, source)
    if any(s.kind == "net" for s in sections[1:]):
        line = next(s.line for s in sections[1:] if s.kind == "net")
        raise CfgError("[net] given twice", line, source)
    return sections


def read_cfg(path: str | os.PathLike) -> list[Section]:
    """:func:`parse_cfg` of the file at ``path``; errors name the file."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise CfgError(f"not UTF-8 text ({e.reason})", line, os.fspath(path)) from None
    return parse_cfg(text, source=os.fspath(path))


def format_cfg(sections: Iterable[tuple[str, Mapping[str, object]]]) -> str:
    """Cfg text of ``(kind, options)`` pairs; list and tuple values are written comma-separated."""
    blocks = []
    for kind, options in sections:
        lines = [f"[{kind}]"]
        for key, value in options.items():
            if isinstance(value, list | tuple):
                value = ",".join(str(v) for v in value)
            lines.append(f"{key}={value}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
