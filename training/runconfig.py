"""A run's settings as YAML: ``--config run.yaml`` in, the resolved ``OUT/run.yaml`` out.

A settings file maps flag names (``img_size`` or ``img-size``) to values, e.g.::

    epochs: 15
    img_size: 160            # or [160, 192]
    set: [loss.box_loss=iou]
    ema: true

It covers every flag of the parser generically: its values become command-line tokens placed
*before* the real command line, so argparse checks them like typed flags and an explicit flag
wins. :func:`write_run_config` writes the resolved settings of a run; ``--resume`` reads them
back from ``OUT/run.yaml``, and :func:`read_run_config` gives them to any other check.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence
from typing import Any

RUN_CONFIG = "run.yaml"
"""File name of a run's resolved settings inside its ``--out``."""

INVOCATION = frozenset({"help", "config", "resume", "exist_ok", "verbose", "out"})
"""Flags about this invocation, not the run's settings: never read from or written to a file."""


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config FILE``, ``--resume`` and ``--exist-ok``."""
    parser.add_argument(
        "--config",
        metavar="YAML",
        help="settings file (flag: value per line, as the run.yaml a run writes); flags given on "
        "the command line win",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out with its run.yaml settings (from its last epoch backup)",
    )
    parser.add_argument(
        "--exist-ok",
        action="store_true",
        help="start a new run in a non-empty --out, replacing what a previous run wrote there",
    )


def parse_with_config(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, default_out: str
) -> argparse.Namespace:
    """``parser.parse_args(argv)`` on top of the settings of ``--config`` (or, with ``--resume``,
    of ``OUT/run.yaml``). A bad file exits with status 2 and a message naming it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    pre.add_argument("--resume", action="store_true")
    pre.add_argument("--exist-ok", action="store_true")
    pre.add_argument("--out", default=default_out)
    known, _ = pre.parse_known_args(argv)
    if known.resume and known.exist_ok:
        parser.error("--resume continues the run in --out, --exist-ok replaces it: pick one")
    path = known.config
    if known.resume and path is None:
        path = os.path.join(known.out, RUN_CONFIG)
        if not os.path.isfile(path):
            parser.error(f"--resume: {path}: no such file (no run to resume in --out {known.out})")
    if path is None:
        return parser.parse_args(argv)
    try:
        tokens = settings_argv(parser, read_run_config(path))
    except (OSError, ValueError) as err:
        parser.error(f"--config {path}: {err}")
    return parser.parse_args([*tokens, *argv])


def read_run_config(path: str | os.PathLike) -> dict[str, Any]:
    """The ``{setting: value}`` mapping of a YAML settings file (``-`` in names read as ``_``)."""
    import yaml

    with open(path, encoding="utf-8") as f:
        try:
            settings = yaml.safe_load(f)
        except yaml.YAMLError as err:
            raise ValueError(f"not valid YAML ({str(err).splitlines()[0]})") from None
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise ValueError(f"expected 'flag: value' lines, got a {type(settings).__name__}")
    return {str(key).replace("-", "_"): value for key, value in settings.items()}


def settings_argv(parser: argparse.ArgumentParser, settings: dict[str, Any]) -> list[str]:
    """Command-line tokens that set ``settings`` (``{dest: value}``) on ``parser``.

    Raises ``ValueError`` naming an unknown setting (with the closest flag) or a value of the
    wrong shape.
    """
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in INVOCATION}
    tokens: list[str] = []
    for name, value in settings.items():
        if name not in actions:
            close = difflib.get_close_matches(name, list(actions), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"unknown setting {name!r}{hint}")
        tokens += _tokens(actions[name], value)
    return tokens


def _tokens(action: argparse.Action, value: Any) -> list[str]:
    flag = next(s for s in action.option_strings if s.startswith("--"))
    if value is None:
        return []
    if isinstance(action, argparse.BooleanOptionalAction):
        if not isinstance(value, bool):
            raise ValueError(f"{action.dest}: expected true or false, got {value!r}")
        return [flag if value else f"--no-{flag[2:]}"]
    if action.nargs == 0:  # store_true / store_const
        return [flag] if value == action.const else []
    values = value if isinstance(value, list | tuple) else [value]
    if isinstance(action, argparse._AppendAction):  # repeatable: one flag per value
        return [token for v in values for token in (flag, str(v))]
    if action.nargs is None and len(values) != 1:
        raise ValueError(f"{action.dest}: expected one value, got {value!r}")
    return [flag, *map(str, values)]


def run_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """``args`` as ``{dest: value}`` in the parser's flag order, invocation flags left out."""
    settings = {}
    for action in parser._actions:
        if action.option_strings and action.dest not in INVOCATION and hasattr(args, action.dest):
            value = getattr(args, action.dest)
            settings[action.dest] = _listed(value)
    return settings


def _listed(value: Any) -> Any:
    """A tuple as a list (YAML's safe dumper has no tuples), anything else as it is."""
    return list(value) if isinstance(value, tuple) else value


def write_run_config(
    parser: argparse.ArgumentParser, args: argparse.Namespace, folder: str | os.PathLike
) -> str:
    """Write :func:`run_settings` to ``folder/run.yaml`` (atomically); returns its path."""
    import yaml

    from kyolo.saving import atomic_path

    path = os.path.join(os.fspath(folder), RUN_CONFIG)
    text = yaml.safe_dump(run_settings(parser, args), sort_keys=False, default_flow_style=None)
    with atomic_path(path) as temp, open(temp, "w", encoding="utf-8") as f:
        f.write(f"# {parser.prog} --config {RUN_CONFIG} repeats this run\n{text}")
    return path


def resume_differences(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The settings of ``args`` that differ from the run in ``args.out`` (its ``run.yaml``), as
    ``"--flag old → new"``; a setting the file lacks (a newer flag) counts with its default.

    Values are compared after a YAML round trip, the form in which the run stored them.
    """
    import yaml

    stored = read_run_config(os.path.join(args.out, RUN_CONFIG))
    now = yaml.safe_load(yaml.safe_dump(run_settings(parser, args), sort_keys=False))
    defaults = {name: parser.get_default(name) for name in now}
    defaults = yaml.safe_load(yaml.safe_dump({k: _listed(v) for k, v in defaults.items()}))
    return [
        f"--{name.replace('_', '-')} {stored.get(name, defaults[name])} → {value}"
        for name, value in now.items()
        if stored.get(name, defaults[name]) != value
    ]


def check_resume(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """With ``--resume``, exit (status 2, nothing written) unless the settings are the run's own:
    epochs, losses or data of another run would silently continue its backup and history."""
    if not args.resume:
        return
    differences = resume_differences(parser, args)
    if differences:
        parser.error(
            f"--resume: the run in {args.out} has other settings: {', '.join(differences)}; "
            "resume without changing them, or start a new run (--exist-ok or another --out)"
        )


def check_out(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse a non-empty ``--out`` unless ``--resume`` or ``--exist-ok`` says what to do with it
    (exit status 2, nothing written). The temporary folders of a multi-worker run's other workers
    (``workertemp_*``, :func:`kyolo.distribute.write_dir`), which they may create first, don't
    count."""
    out = args.out
    if os.path.exists(out) and not os.path.isdir(out):
        parser.error(f"--out {out}: exists and is not a folder")
    listed = sorted(os.listdir(out)) if os.path.isdir(out) else []
    held = [name for name in listed if not name.startswith("workertemp_")]
    if held and not (args.resume or args.exist_ok):
        shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
        parser.error(
            f"--out {out} is not empty ({shown}): --resume continues its run, --exist-ok starts "
            "a new one there, or choose another --out"
        )
