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
            with zipfile.ZipFile(temp, "a") as archive:
                archive.writestr(METADATA, metadata_json(cfg, class_names))


def metadata_json(cfg: YoloConfig | None, class_names: Sequence[str] | None) -> str:
    """``{"config": cfg.to_dict() or null, "class_names": [...] or null}`` as JSON text.

    The one metadata format of every saved or exported kyolo model (``.keras``, SavedModel,
    TFLite, ONNX); :func:`read_metadata_json` reads it back.
    """
    metadata = {
        "config": None if cfg is None else cfg.to_dict(),
        "class_names": None if class_names is None else list(class_names),
    }
    return json.dumps(metadata, indent=1)


def read_metadata_json(text: str | bytes, source: str) -> tuple[YoloConfig, list[str]]:
    """``(config, class names)`` from :func:`metadata_json`'s text; ``source`` names it in errors.

    Models exported without class names get ``["0", "1", ...]``.
    """
    from kyolo.config import YoloConfig

    try:
        metadata = json.loads(text)
        cfg = YoloConfig.from_any(metadata["config"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{source}: no valid kyolo metadata ({err})") from None
    names = metadata.get("class_names") or [str(c) for c in range(cfg.num_classes)]
    if len(names) != cfg.num_classes:
        raise ValueError(f"{source}: {len(names)} class names for {cfg.num_classes} classes")
    return cfg, list(names)


def load_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``kyolo.json`` :func:`save_model` stored in the ``.keras`` at ``path``; ``{}`` if none.

    ``YoloConfig.from_any(load_metadata(path)["config"])`` rebuilds the config.
    """
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise ValueError(f"{path}: not a .keras archive ({e})") from None
    with archive:
        if METADATA not in archive.namelist():
            return {}
        return json.loads(archive.read(METADATA))


def load_trained(path: str | os.PathLike) -> tuple[keras.Model, YoloConfig, list[str]]:
    """``(model, config, class names)`` of a ``.keras`` saved with its metadata, or of a training
    run folder (its ``model.keras``). Raises ``ValueError`` naming the file when it has no
    ``kyolo.json`` (saved without ``cfg``)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "model.keras")
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file (a training run folder holds model.keras)")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise ValueError(f"{path}: not a .keras archive ({e})") from None
    with archive:
        if METADATA not in archive.namelist():
            raise ValueError(
                f"{path}: no {METADATA} in the archive; save it with "
                "kyolo.saving.save_model(model, path, cfg=..., class_names=...)"
            )
        cfg, names = read_metadata_json(archive.read(METADATA), path)
    return load_keras(path), cfg, names


def load_keras(path: str | os.PathLike) -> keras.Model:
    """``keras.saving.load_model(path, compile=False, safe_mode=True)`` with kyolo's layers
    registered: a model trained with ``--sync-bn`` holds ``kyolo>SyncBatchNormalization``."""
    import kyolo.models.sync_bn  # noqa: F401  (registers the layer with Keras)

    return keras.saving.load_model(path, compile=False, safe_mode=True)
