"""Checkpoint writers under interruption: a tiny model, its two states, and a self-kill.

``python -m tests.reliability.kill_during_save WRITER FOLDER`` writes checkpoint 1 of ``WRITER``
into ``FOLDER``, then sends itself SIGKILL while checkpoint 2 is being written (right after its
first file is created), so ``FOLDER`` holds what a real kill leaves (``test_checkpoints.py``).
"""

from __future__ import annotations

import os
import signal
import sys


def tiny_model():
    """A compiled two-layer model whose weights all equal 1 (checkpoint 1)."""
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(3)(inputs)))
    model.compile(keras.optimizers.SGD(0.1), loss="mse")
    fill(model, 1.0)
    return model


def fill(model, value: float) -> None:
    model.set_weights([w * 0 + value for w in model.get_weights()])


def state(model) -> float | None:
    """The value every weight holds (1 or 2: which checkpoint), or None for a mixture."""
    values = {float(v) for w in model.get_weights() for v in w.ravel()}
    return values.pop() if len(values) == 1 else None


def writers(folder: str):
    """``{name: save(model, epoch)}``: each writes checkpoint ``epoch`` of ``model`` in ``folder``.

    ``keras_*`` are Keras' own callbacks, the controls that show in-place writes corrupt.
    """
    import keras

    from kyolo import callbacks, saving

    def checkpoint(cls):
        callback = cls(
            os.path.join(folder, "best.keras"), monitor="score", mode="max", save_best_only=True
        )

        def save(model, epoch):
            callback.set_model(model)
            callback.on_epoch_end(epoch - 1, {"score": float(epoch)})  # improves every epoch

        return save

    def backup(cls):
        callback = cls(folder)

        def save(model, epoch):
            callback.set_model(model)
            callback.on_epoch_end(epoch - 1)

        return save

    return {
        "save_model": lambda model, epoch: saving.save_model(
            model, os.path.join(folder, "best.keras")
        ),
        "checkpoint": checkpoint(callbacks.AtomicModelCheckpoint),
        "backup": backup(callbacks.AtomicBackupAndRestore),
        "keras_checkpoint": checkpoint(keras.callbacks.ModelCheckpoint),
        "keras_backup": backup(keras.callbacks.BackupAndRestore),
    }


def restore(writer: str, folder: str) -> tuple[float | None, int | None]:
    """``(state, epoch)`` a restart gets from ``folder``; raises if nothing usable is there."""
    import keras

    if writer.endswith("backup"):
        from kyolo.callbacks import AtomicBackupAndRestore

        cls = (
            keras.callbacks.BackupAndRestore if writer == "keras_backup" else AtomicBackupAndRestore
        )
        model = tiny_model()
        fill(model, 0.0)
        callback = cls(folder)
        callback.set_model(model)
        callback.on_train_begin()
        return state(model), model._initial_epoch
    model = keras.saving.load_model(os.path.join(folder, "best.keras"), safe_mode=True)
    return state(model), None


def kill_on_first_write() -> None:
    """SIGKILL this process as soon as a checkpoint file has been created for writing."""
    import zipfile

    import h5py

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    original_h5 = h5py.File.__init__
    original_zip = zipfile.ZipFile.__init__

    def h5_init(self, name, mode="r", *args, **kwargs):
        original_h5(self, name, mode, *args, **kwargs)
        if mode != "r":
            die()

    def zip_init(self, file, mode="r", *args, **kwargs):
        original_zip(self, file, mode, *args, **kwargs)
        if mode != "r":
            die()

    h5py.File.__init__ = h5_init
    zipfile.ZipFile.__init__ = zip_init


def main(writer: str, folder: str) -> None:
    save = writers(folder)[writer]
    model = tiny_model()
    save(model, 1)
    fill(model, 2.0)
    kill_on_first_write()
    save(model, 2)
    raise SystemExit("not killed: the hooks missed the write")


if __name__ == "__main__":
    main(*sys.argv[1:])
