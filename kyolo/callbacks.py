"""Keras callbacks specific to detection training."""

from __future__ import annotations

import csv
import glob
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from kyolo.config import YoloConfig
from kyolo.evaluate import evaluate_detector
from kyolo.postprocess import detect
from kyolo.saving import atomic_path


class CocoMeanAveragePrecision(keras.callbacks.Callback):
    """Adds ``val_mAP50`` and ``val_mAP50_95`` (pycocotools) to the epoch logs.

    Place it *before* ``ModelCheckpoint``, ``TensorBoard`` and ``CSVLogger`` in the callback list
    so that they see the values. Epochs it skips (see ``frequency``) carry the last values, and
    ``val_mAP_epoch`` says which (0-based) epoch they were measured at.

    Args:
        dataset: validation data from ``kyolo.data.pipeline.make_dataset(..., encode=None)``.
        cfg: the head configuration.
        frequency: evaluate every this many epochs, and always at the last epoch.
        nms_args: passed to :func:`kyolo.postprocess.non_max_suppression` (whose defaults are
            the exporter's too, so the SavedModel reproduces these numbers).
    """

    def __init__(
        self, dataset: tf.data.Dataset, cfg: YoloConfig, frequency: int = 1, **nms_args: Any
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.cfg = cfg
        self.frequency = max(1, int(frequency))
        self.nms_args = nms_args
        self.last: dict[str, float] = {}
        self._detect = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._epochs = self.params.get("epochs") if self.params else None

        @tf.function(reduce_retracing=True)
        def run(images: tf.Tensor) -> dict[str, tf.Tensor]:
            return detect(self.model(images, training=False), self.cfg, **self.nms_args)

        self._detect = run

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        last_epoch = self._epochs is not None and epoch + 1 >= self._epochs
        if (epoch + 1) % self.frequency == 0 or last_epoch or not self.last:
            result = evaluate_detector(self._detect, self.dataset, self.cfg.num_classes)
            self.last = {f"val_{key}": value for key, value in result.items()}
            self.last["val_mAP_epoch"] = float(epoch)
        if logs is not None:
            logs.update(self.last)


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """``keras.callbacks.ModelCheckpoint`` that replaces its file whole (:func:`atomic_path`).

    Keras saves in place, so a kill while saving ``best.keras`` destroys the previous best model;
    here the previous file stays intact until the new one is complete. Same arguments.
    """

    # Overrides Keras' private hook (keras 3.x): the decision logic is reused unchanged.
    def _save_model(self, epoch: int, batch: int | None, logs: dict[str, Any]) -> None:
        filepath = self._get_file_path(epoch, batch, logs)
        if not self._should_save_model(epoch, batch, logs, filepath):
            return
        os.makedirs(os.path.dirname(os.path.abspath(filepath)), exist_ok=True)
        with atomic_path(filepath) as temp:
            if self.save_weights_only:
                self.model.save_weights(temp, overwrite=True)
            else:
                self.model.save(temp, overwrite=True)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``keras.callbacks.BackupAndRestore`` whose backup survives a kill at any moment.

    Keras rewrites ``latest.weights.h5`` and then ``training_metadata.json`` in place: a kill during
    the first leaves a truncated weights file (the restart fails), one between the two leaves
    weights an epoch ahead of the recorded epoch (the restart silently trains that epoch twice).
    Here every backup writes its weights to a new file, then atomically replaces the metadata,
    which names that file: the metadata is the commit record, so a restart sees either the
    previous backup or the new one, whole. Older weight files are removed after the commit.
    ``double_checkpoint`` is not needed and is ignored. Same arguments otherwise, and:

    Args:
        restore_dir: where a restore reads the backup from (default: ``backup_dir``). A
            multi-worker run's non-chief workers back up into their temporary folders and
            restore from the chief's backup, so that every worker resumes from the same weights
            and epoch (:mod:`kyolo.distribute`).
        swap_ema: the run's ``keras.callbacks.SwapEMAWeights(swap_on_epoch=True)``, if any. That
            callback must come first (so that validation, mAP and checkpoints see the EMA
            weights), so the backup is taken with the EMA weights in the model and the raw ones
            in the optimizer's averages. The metadata records this, and a restore swaps them back
            before training goes on; without it a resumed run would train on from the EMA weights.
    """

    def __init__(
        self,
        backup_dir: str,
        swap_ema: keras.callbacks.SwapEMAWeights | None = None,
        restore_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(backup_dir, **kwargs)
        self.swap_ema = swap_ema
        self.restore_dir = restore_dir or backup_dir

    def _save_model(self) -> None:
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"epoch{self._current_epoch}-batch{self._last_batch_seen}.weights.h5"
        with atomic_path(os.path.join(self.backup_dir, name)) as temp:
            self.model.save_weights(temp, overwrite=True)
        metadata = {
            "epoch": self._current_epoch,
            "batch": self._last_batch_seen,
            "weights": name,
            # Keras' private flag (keras 3.x): whether the EMA weights are in the model now.
            "ema_in_model": bool(self.swap_ema and self.swap_ema._ema_weights_in_model),
        }
        with atomic_path(self._training_metadata_path) as temp, open(temp, "w") as f:
            json.dump(metadata, f)
        for old in glob.glob(os.path.join(glob.escape(self.backup_dir), "epoch*.weights.h5")):
            if os.path.basename(old) != name:
                os.remove(old)

    def _load_model(self) -> None:
        metadata_path = os.path.join(
            self.restore_dir, os.path.basename(self._training_metadata_path)
        )
        if not os.path.isfile(metadata_path):
            return super()._load_model()  # nothing backed up yet
        with open(metadata_path) as f:
            metadata = json.load(f)
        if "weights" not in metadata:
            return super()._load_model()  # a backup written by keras' own callback
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.restore_dir, metadata["weights"]))
        if metadata.get("ema_in_model"):
            if self.swap_ema is None:
                raise ValueError(
                    f"{self.backup_dir} holds EMA weights swapped into the model: pass the "
                    "run's SwapEMAWeights callback as swap_ema to restore it"
                )
            self.swap_ema._swap_variables()  # back to the raw weights training goes on from
        self.model._initial_epoch = metadata["epoch"]


class HistoryCSV(keras.callbacks.Callback):
    """Appends one row per epoch to a CSV file, by column name (a resumable ``CSVLogger``).

    Keras' ``CSVLogger(append=True)`` writes its rows under whatever header the file already has:
    a resumed run whose logs have other columns (another loss preset) puts every value under
    another name. Here the file's header (or, for a new file, ``epoch`` and the first epoch's log
    names, sorted) fixes the columns; an epoch whose logs have other columns raises
    ``ValueError`` naming the missing and the new ones, and nothing is appended.

    Args:
        path: the CSV file; created with its header at the first epoch if absent or empty.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.columns: list[str] | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.columns = None
        if os.path.exists(self.path):
            with open(self.path, newline="") as f:
                self.columns = next(csv.reader(f), None)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        row = {"epoch": epoch, **(logs or {})}
        columns = self.columns or ["epoch", *sorted(logs or {})]
        if set(row) != set(columns):
            missing = ", ".join(sorted(set(columns) - set(row))) or "none"
            new = ", ".join(sorted(set(row) - set(columns))) or "none"
            raise ValueError(
                f"{self.path}: epoch {epoch + 1} has columns other than the file's header "
                f"(missing {missing}, new {new}): was the file written by a run with other "
                "settings? Nothing appended"
            )
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            if self.columns is None:
                writer.writeheader()
            writer.writerow(row)
        self.columns = columns


class ProgressLogger(keras.callbacks.Callback):
    """Progress that a person reads: a per-step bar on a terminal, one short line per epoch.

    Use with ``model.fit(..., verbose=0)``. Says at once that the first steps build the graph
    (otherwise the first epoch is silent for tens of seconds), then per epoch prints ``keys``
    (loss, val_loss, mAP) and the time. Every metric still goes to the other callbacks' logs
    (``CSVLogger``, TensorBoard). Place it after :class:`CocoMeanAveragePrecision`.

    Args:
        stream: where to write (default ``sys.stdout``).
        bar: per-step bar (rewritten in place with ``\\r``); default: when ``stream`` is a TTY.
        keys: epoch-log entries shown when present.
    """

    def __init__(
        self,
        stream: Any = None,
        bar: bool | None = None,
        keys: Sequence[str] = ("loss", "val_loss", "val_mAP50", "val_mAP50_95"),
    ) -> None:
        super().__init__()
        self.stream = sys.stdout if stream is None else stream
        self.bar = self.stream.isatty() if bar is None else bar
        self.keys = tuple(keys)
        self._started = 0.0
        self._epoch = 0

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        # A distributed dataset's length is unknown to Keras until its first epoch ends.
        steps = f" of {self.params['steps']} steps" if self.params.get("steps") else ""
        self._write(
            f"training {self.params['epochs']} epochs{steps}; the first steps also build the "
            "graph\n"
        )

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.monotonic()
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        steps = self.params.get("steps")
        if not self.bar or not steps:
            return
        done = int(30 * (batch + 1) / steps)
        loss = f" loss {logs['loss']:.4f}" if logs and "loss" in logs else ""
        self._write(
            f"\r{self._prefix()} [{'=' * done}{'.' * (30 - done)}] {batch + 1}/{steps}{loss} "
            f"{time.monotonic() - self._started:.0f} s"
        )

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        shown = "  ".join(f"{key} {logs[key]:.4f}" for key in self.keys if key in logs)
        elapsed = time.monotonic() - self._started
        # On a terminal the line replaces the bar; "\x1b[K" clears what the bar left beyond it.
        start, clear = ("\r", "\x1b[K") if self.bar else ("", "")
        self._write(f"{start}{self._prefix()}  {shown}  {elapsed:.0f} s{clear}\n")

    def _prefix(self) -> str:
        return f"epoch {self._epoch + 1}/{self.params['epochs']}"
