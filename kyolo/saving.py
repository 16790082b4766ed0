"""Crash-safe file writes: a file is replaced whole or not at all.

Keras writes ``.keras`` archives and ``.weights.h5`` files in place (``open(path, "wb")`` truncates
first), so a process killed while saving leaves a truncated file where the previous good one was.
:func:`atomic_path` writes to a temporary sibling and renames it over the target with
``os.replace``, which POSIX and Windows perform atomically within one file system.

:func:`save_model` can also store the model's :class:`~kyolo.config.YoloConfig` and class names in
the archive, as a ``kyolo.json`` member that Keras' loader ignores; :func:`load_metadata` reads it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import keras

if TYPE_CHECKING:
    from kyolo.config import YoloConfig

_PARTIAL = ".partial-"
METADATA = "kyolo.json"
"""Name of the metadata member of a ``.keras`` archive written by :func:`save_model`."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    The temporary file sits in the same folder and ends with ``path``'s file name, so writers that
    check the extension (``.keras``, ``.weights.h5``) accept it. It is flushed to disk before the
    rename. On an exception it is removed and ``path`` is untouched; after a kill it stays behind
    and is removed by the next write of the same target.
    """
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    for stale in glob.glob(os.path.join(folder, f"{_PARTIAL}*-{glob.escape(name)}")):
        with contextlib.suppress(OSError):
            os.remove(stale)
    handle, temp = tempfile.mkstemp(prefix=_PARTIAL, suffix=f"-{name}", dir=folder)
    os.close(handle)
    try:
        yield temp
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def save_model(
    model: keras.Model,
    path: str | os.PathLike,
    *,
    cfg: YoloConfig | None = None,
    class_names: Sequence[str] | None = None,
) -> None:
    """``model.save(path)`` (a ``.keras`` archive) through :func:`atomic_path`.

    With ``cfg`` or ``class_names``, the archive also holds ``kyolo.json``:
    ``{"config": cfg.to_dict() or null, "class_names": [...] or null}``.
    """
    with atomic_path(path) as temp:
        model.save(temp, overwrite=True)
        if cfg is not None or class_names is not None:
            metadata = {
                "config": None if cfg is None else cfg.to_dict(),
                "class_names": None if class_names is None else list(class_names),
            }
            with zipfile.ZipFile(temp, "a") as archive:
                archive.writestr(METADATA, json.dumps(metadata, indent=1))


def load_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``kyolo.json`` :func:`save_model` stored in the ``.keras`` at ``path``; ``{}`` if none.

    ``YoloConfig.from_any(load_metadata(path)["config"])`` rebuilds the config.
    """
    with zipfile.ZipFile(path) as archive:
        if METADATA not in archive.namelist():
            return {}
        return json.loads(archive.read(METADATA))
