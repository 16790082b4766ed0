"""What every command prints: its help (defaults shown, ``python -m`` name) and no library noise.

TensorFlow writes C++ log lines (oneDNN notes, CPU features, AVX-512 fallbacks) and Python log
records on every start; they say nothing about the job. :func:`quiet_libraries` turns them off
unless the command line has ``--verbose``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

VERBOSE = "--verbose"


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after each flag's help, except where there is none (None): such
    flags say in their help what happens without them."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def make_parser(module: str, description: str) -> argparse.ArgumentParser:
    """A parser named ``python -m module`` whose ``--help`` shows every default, with
    ``--verbose``."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=description,
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument(
        VERBOSE,
        action="store_true",
        help="keep TensorFlow's log lines and library warnings (hidden by default)",
    )
    return parser


def quiet_libraries(argv: Sequence[str] | None = None) -> None:
    """Hide TensorFlow's C++ log lines and Python log records, unless ``argv`` has --verbose.

    Call it first in ``main``: ``TF_CPP_MIN_LOG_LEVEL`` (kept if the user set it) is read when
    TensorFlow loads, and TF 2.21 writes its oneDNN note while loading regardless of that level,
    so TensorFlow is imported here with the process's stderr (file descriptor 2) pointed at
    /dev/null. An import error still raises, with its message, once stderr is back.
    """
    argv = sys.argv[1:] if argv is None else argv
    if VERBOSE in argv or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    for name in ("tensorflow", "absl", "h5py", "matplotlib"):
        logging.getLogger(name).setLevel(logging.ERROR)
