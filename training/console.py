"""What every command prints: its help (defaults shown, ``python -m`` name), no library noise,
and errors as one line.

TensorFlow writes C++ log lines (oneDNN notes, CPU features, AVX-512 fallbacks) and Python log
records on every start; they say nothing about the job. :func:`quiet_libraries` turns them off
unless the command line has ``--verbose``. :func:`cli_main` runs a command: a bad argument is
argparse's exit 2 with ``python -m training.X: error: …``; any error while it runs exits with
status 1 and the single line ``training.X: error: …`` (``--verbose``: the traceback instead).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

VERBOSE = "--verbose"


class CommandError(RuntimeError):
    """A command's failure whose message says what happened and what to do (e.g. a multi-worker
    run that lost a worker): shown without its type, as :data:`CLEAR_ERRORS` are."""


CLEAR_ERRORS = (ValueError, OSError, ImportError, CommandError)
"""Errors whose message says what is wrong by itself (kyolo's name the file, flag or value);
others are shown with their type (``BadZipFile: …``, ``KeyError: 'x'``)."""


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


def cli_main(module: str, run: Callable[[list[str]], None], argv: Sequence[str] | None) -> None:
    """Run a command, ``run(argv)``, the way every ``training.*`` command runs.

    Library noise is hidden first (:func:`quiet_libraries`). An exception out of ``run`` ends the
    process with status 1 and one line on stderr, ``training.X: error: message`` (``module`` is
    ``training.X``), without a traceback; with ``--verbose`` in ``argv`` it propagates, traceback
    and all. ``SystemExit`` (argparse's exit 2, a finished command) and ``KeyboardInterrupt`` pass.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_libraries(argv)
    try:
        run(argv)
    except Exception as err:
        if VERBOSE in argv:
            raise
        raise SystemExit(f"{module}: error: {error_line(err)}") from None


def error_line(err: BaseException) -> str:
    """``err`` as one line: its message (the first line of one that runs over several, as
    TensorFlow's do, with a pointer to --verbose), after its type unless it is a
    :data:`CLEAR_ERRORS`."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    message = lines[0] if lines else "(no message)"
    if len(lines) > 1:
        message += f" (… {len(lines) - 1} more lines with {VERBOSE})"
    return message if isinstance(err, CLEAR_ERRORS) else f"{type(err).__name__}: {message}"
