"""Checkpoints are replaced whole: an interrupted write leaves the previous checkpoint usable.

Two ways to interrupt checkpoint 2 of a writer whose checkpoint 1 is on disk:

* in-process, the folder is copied at every step of the write (each file created, written,
  closed, renamed): each copy is what a kill at that moment leaves, and a restart from any copy
  must see checkpoint 1 or checkpoint 2, whole (for a backup, with the matching epoch);
* a real SIGKILL of a subprocess while it writes (:mod:`tests.reliability.kill_during_save`).

Keras' own ``ModelCheckpoint`` and ``BackupAndRestore`` write in place; they are the controls that
show both harnesses catch a corrupt or inconsistent checkpoint.
"""

import os
import shutil
import signal
import zipfile

import h5py
import pytest

from tests.helpers import run_module
from tests.reliability import kill_during_save as k

ATOMIC = ("save_model", "checkpoint", "backup")
KERAS = ("keras_checkpoint", "keras_backup")


def wrap(monkeypatch, owner, name, before, after=None):
    original = getattr(owner, name)

    def hooked(*args, **kwargs):
        before(args, kwargs)
        result = original(*args, **kwargs)
        (after or before)(args, kwargs)
        return result

    monkeypatch.setattr(owner, name, hooked)


def writing(args, kwargs):
    mode = args[2] if len(args) > 2 else kwargs.get("mode", "r")
    return mode != "r"


def snapshots_of_write(monkeypatch, folder, snapshot_root, write):
    """Run ``write()`` copying ``folder`` before and after each file event; return the copies."""
    copies = []

    def take(*_):
        copies.append(shutil.copytree(folder, snapshot_root / f"{len(copies):03d}"))

    def take_if_writing(args, kwargs):
        if writing(args, kwargs):
            take()

    with monkeypatch.context() as patch:
        for cls in (h5py.File, zipfile.ZipFile):
            wrap(patch, cls, "__init__", lambda *_: None, take_if_writing)
            wrap(patch, cls, "close", take)
        wrap(patch, zipfile.ZipFile, "writestr", take)
        wrap(patch, os, "replace", take)
        write()
    return copies


def restored(writer, folder):
    try:
        return k.restore(writer, str(folder))
    except Exception as err:  # noqa: BLE001 - any failure to restore is the finding
        return f"unusable: {type(err).__name__}: {err}"[:200]


def states_seen_by_a_restart(writer, tmp_path, monkeypatch):
    folder = tmp_path / "out"
    folder.mkdir()
    save = k.writers(str(folder))[writer]
    model = k.tiny_model()
    save(model, 1)
    k.fill(model, 2.0)
    copies = snapshots_of_write(monkeypatch, folder, tmp_path / "copies", lambda: save(model, 2))
    assert len(copies) >= 3, "the hooks missed the write"
    return [restored(writer, copy) for copy in copies], restored(writer, folder)


def whole(writer, epoch):
    return (float(epoch), epoch if writer.endswith("backup") else None)


@pytest.mark.parametrize("writer", ATOMIC)
def test_every_interruption_point_leaves_a_whole_checkpoint(writer, tmp_path, monkeypatch):
    seen, final = states_seen_by_a_restart(writer, tmp_path, monkeypatch)
    assert set(seen) <= {whole(writer, 1), whole(writer, 2)}, seen
    assert seen[0] == whole(writer, 1) and final == whole(writer, 2)


@pytest.mark.parametrize("writer", KERAS)
def test_control_keras_in_place_writes_leave_broken_checkpoints(writer, tmp_path, monkeypatch):
    seen, final = states_seen_by_a_restart(writer, tmp_path, monkeypatch)
    assert final == whole(writer, 2)
    broken = [s for s in seen if s not in (whole(writer, 1), whole(writer, 2))]
    assert broken, "Keras now writes atomically: the kyolo wrappers may be unnecessary"


def test_stale_partial_files_are_removed_by_the_next_write(tmp_path):
    stale = tmp_path / ".partial-abc-best.keras"
    stale.write_bytes(b"left by a killed run")
    k.writers(str(tmp_path))["save_model"](k.tiny_model(), 1)
    assert sorted(os.listdir(tmp_path)) == ["best.keras"]


@pytest.mark.parametrize("writer", ["backup", "checkpoint"])
def test_sigkill_while_writing_keeps_the_previous_checkpoint(writer, tmp_path):
    result = run_module("tests.reliability.kill_during_save", writer, str(tmp_path), timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert any(name.startswith(".partial-") for name in os.listdir(tmp_path))  # killed mid-write
    assert k.restore(writer, str(tmp_path)) == whole(writer, 1)
