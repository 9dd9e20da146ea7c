"""The plain-Keras engine (`train.engine: keras`): `model.fit` with Keras' own callbacks.

The reference the fast loop (`loop.Trainer`) is tested against: the same model, optimizer,
batches (each epoch's row order is `loop.epoch_order(n, seed, epoch)`, fed by a `PyDataset`)
and learning-rate rules, trained by Keras' `fit` with

- `keras.callbacks.LearningRateScheduler(callbacks.rate_schedule(t))`,
- `keras.callbacks.EarlyStopping(monitor, min_delta, patience, restore_best_weights)` when
  `patience` > 0,
- `keras.callbacks.ReduceLROnPlateau(monitor, factor, patience, min_delta, cooldown, min_lr)`
  when `plateau_patience` > 0,
- `keras.callbacks.BackupAndRestore` in the run's backup folder, for resuming after a kill,
- with `augment.mode: fresh`, the fast loop's fresh transforms of each batch, applied as
  the `PyDataset` hands the batch over,
- and a small callback that writes each epoch to the project's `RunLog` (DVCLive), prints it
  as the fast loop does and times it.

`BackupAndRestore` keeps the weights, the optimizer's variables (its learning rate among them)
and the epoch count. It keeps neither the dropout layers' seed-generator states (Keras'
weights files leave them out) nor what EarlyStopping and ReduceLROnPlateau have counted, so a
resumed `fit` would draw other dropout masks and start its patience over. `_ResumeState`
keeps those beside it (state.npz in the same folder, written in one piece), so a killed and
resumed run ends as an uninterrupted one. It is written after `BackupAndRestore` has written
its files, with a hash of the weights file they belong to. `BackupAndRestore` overwrites its
files in place, so it keeps the previous epoch's as `.bkp` copies (`double_checkpoint`): a
kill while it writes, or before the state follows, leaves the previous epoch's files, which
are put back. A resumed run uses a weights file and epoch count only when they are the ones
its state was written with, and only a state of the same run (fingerprint); anything else is
discarded with one line and the run starts over.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
import zipfile
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from ..common import files
from . import callbacks as rules
from .fresh import epoch_transforms
from .loop import EVAL_BATCH, epoch_order, warp_batch

STATE = "state.npz"
KERAS_WEIGHTS = "latest.weights.h5"  # what BackupAndRestore writes: the weights and optimizer,
KERAS_METADATA = "training_metadata.json"  # the epochs done, and with double_checkpoint
PREVIOUS = ".bkp"  # the previous epoch's copies of both, named with this suffix


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class EpochBatches(keras.utils.PyDataset):
    """The batches of one epoch, in the fast loop's row order of that epoch (`set_epoch`);
    with `fresh` settings, each image through that epoch's map of it (`fresh.epoch_transforms`,
    applied by the fast loop's `warp_batch`), so both engines see the same images."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, fresh: dict | None = None):
        super().__init__()
        self.x, self.y, self.batch_size, self.seed, self.fresh = x, y, batch_size, seed, fresh
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.order = epoch_order(len(self.x), self.seed, epoch)
        if self.fresh:
            side = int(round(self.x.shape[-1] ** 0.5))
            self.maps = epoch_transforms(len(self.x), side, self.fresh, self.seed, epoch)

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int):
        rows = self.order[index * self.batch_size: (index + 1) * self.batch_size]
        if self.fresh:
            return warp_batch(self.x[rows], self.maps[rows], self.fresh["fill_mode"]).numpy(), self.y[rows]
        return self.x[rows], self.y[rows]


def _rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class _Epochs(keras.callbacks.Callback):
    """Sets each epoch's row order, and logs, prints and times each epoch as the fast loop does.
    Placed after the LearningRateScheduler, so the rate it reads is the one the epoch trains at."""

    def __init__(self, batches: EpochBatches, epochs: int, log: Callable[[dict[str, float]], None]):
        super().__init__()
        self.batches, self.epochs, self.log = batches, epochs, log
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)
        self.rate = _rate(self.model)
        self.began = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.began
        self.seconds.append(seconds)
        logs = logs or {}
        # no val_* without validation rows (a refit on every labelled row)
        metrics = {name: float(logs[name]) for name in ("loss", "accuracy", "val_loss", "val_accuracy") if name in logs}
        metrics["learning_rate"] = self.rate
        print(f"Epoch {epoch + 1}/{self.epochs}", flush=True)
        print(f"{seconds:.1f}s - " + " - ".join(f"{k}: {v:.4g}" for k, v in metrics.items()), flush=True)
        self.log(metrics)


class _ResumeState(keras.callbacks.Callback):
    """What BackupAndRestore does not keep: seed-generator states, and the early-stopping and
    plateau callbacks' counts and best values (the best weights too). Restores them after the
    callbacks' own `on_train_begin` has reset them, saves them after every epoch."""

    def __init__(self, folder: Path, fingerprint: str, stopping, plateau, saved: dict | None):
        super().__init__()
        self.folder, self.fingerprint, self.stopping, self.plateau, self.saved = folder, fingerprint, stopping, plateau, saved

    def _seed_states(self) -> list:
        weights = {id(w) for w in self.model.weights}
        return [v for v in self.model.variables if id(v) not in weights]

    def on_train_begin(self, logs=None):
        if self.saved is None:
            return
        state, arrays = self.saved["state"], self.saved["arrays"]
        for i, variable in enumerate(self._seed_states()):
            variable.assign(arrays[f"seed_{i}"])
        if self.stopping is not None:
            s = state["stopping"]
            self.stopping.best, self.stopping.best_epoch = s["best"], s["best_epoch"]
            self.stopping.wait, self.stopping.stopped_epoch = s["wait"], s["stopped_epoch"]
            best = [arrays[f"best_{i}"] for i in range(s["best_weights"])]
            self.stopping.best_weights = best or None
        if self.plateau is not None:
            p = state["plateau"]
            self.plateau.best, self.plateau.wait, self.plateau.cooldown_counter = p["best"], p["wait"], p["cooldown_counter"]

    def on_epoch_end(self, epoch, logs=None):
        arrays = {f"seed_{i}": v.numpy() for i, v in enumerate(self._seed_states())}
        state = {"fingerprint": self.fingerprint, "epochs_done": epoch + 1,
                 "stopped": bool(self.model.stop_training)}
        if self.stopping is not None:
            s = self.stopping
            best = s.best_weights or []
            arrays.update({f"best_{i}": w for i, w in enumerate(best)})
            state["stopping"] = {"best": None if s.best is None else float(s.best), "best_epoch": int(s.best_epoch),
                                 "wait": int(s.wait), "stopped_epoch": int(s.stopped_epoch), "best_weights": len(best)}
        if self.plateau is not None:
            p = self.plateau
            state["plateau"] = {"best": None if p.best is None else float(p.best), "wait": int(p.wait),
                                "cooldown_counter": int(p.cooldown_counter)}
        state["weights_digest"] = _digest(self.folder / KERAS_WEIGHTS)  # BackupAndRestore wrote it just now
        files.save_npz(self.folder / STATE, state=np.array(json.dumps(state)), **arrays)


def read_backup(folder: Path, fingerprint: str) -> dict | None:
    """The saved state of this run (None: no backup), with BackupAndRestore's files of the
    same epoch in place. A backup of another run, a damaged one, or one whose state matches
    neither BackupAndRestore's files nor their previous copies is removed with one line."""
    if not folder.exists():
        return None
    if not (folder / STATE).exists():  # killed before its first epoch was backed up: nothing to resume
        shutil.rmtree(folder)
        return None
    reason = None
    try:
        arrays = files.load_npz(folder / STATE)
        state = json.loads(str(arrays["state"]))
        if state["fingerprint"] != fingerprint:
            reason = "written for other parameters, data or code"
        else:
            reason = _put_matching_files_in_place(folder, int(state["epochs_done"]), state["weights_digest"])
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as err:
        reason = f"it cannot be read: {type(err).__name__}: {' '.join(str(err).split())}"
    if reason:
        print(f"discarding {folder} ({reason})", flush=True)
        shutil.rmtree(folder)
        return None
    return {"state": state, "arrays": arrays}


def _put_matching_files_in_place(folder: Path, epochs: int, digest: str) -> str | None:
    """Leave BackupAndRestore's files of `epochs` epochs, whose weights hash to `digest`, in
    place: the current ones, or else the previous copies; why neither fits otherwise."""
    for suffix in ("", PREVIOUS):
        weights, metadata = folder / (KERAS_WEIGHTS + suffix), folder / (KERAS_METADATA + suffix)
        try:
            fits = json.loads(metadata.read_text())["epoch"] == epochs and _digest(weights) == digest
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if fits:
            if suffix:
                shutil.copyfile(weights, folder / KERAS_WEIGHTS)
                shutil.copyfile(metadata, folder / KERAS_METADATA)
            return None
    return f"no weights of BackupAndRestore's are those of its state's epoch {epochs}"


def fit(
    model: keras.Model,
    data: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray] | None,
    t,
    *,
    backup: Path,
    fingerprint: str,
    log: Callable[[dict[str, float]], None],
    rewind: Callable[[int], None] = lambda epochs: None,
    fresh: dict | None = None,
    learning_rate: Callable[[int, float], float] | None = None,
) -> tuple[int, list[float]]:
    """Train a compiled `model` with `model.fit` and the callbacks above for the `train` knobs
    `t` (epochs, batch_size, seed, schedule, early stopping and plateau keys); returns (epochs
    trained in all, the seconds of each epoch this call trained). `backup` is the run's folder
    for BackupAndRestore and the state beside it; `fresh`, the settings of `augment.mode: fresh`;
    `learning_rate`, a schedule in place of the one `t` gives (`callbacks.rate_schedule`).
    `validation` None trains without validation rows (early stopping and plateau off)."""
    if validation is None and (t.patience or t.plateau_patience):
        raise ValueError("early stopping and the plateau rule watch validation rows, and none are given")
    x, y = data
    saved = read_backup(backup, fingerprint)
    start = int(saved["state"]["epochs_done"]) if saved else 0
    stopped = bool(saved["state"]["stopped"]) if saved else False
    rewind(start)
    batches = EpochBatches(x, y, t.batch_size, t.seed, fresh)
    epochs = _Epochs(batches, t.epochs, log)
    stopping = plateau = None
    callbacks = [keras.callbacks.LearningRateScheduler(learning_rate or rules.rate_schedule(t)), epochs]
    if t.patience:
        stopping = keras.callbacks.EarlyStopping(
            monitor=t.monitor, min_delta=t.min_delta, patience=t.patience,
            mode="min" if t.monitor.endswith("loss") else "max", restore_best_weights=t.restore_best_weights,
        )
        callbacks.append(stopping)
    if t.plateau_patience:
        plateau = keras.callbacks.ReduceLROnPlateau(
            monitor=t.plateau_monitor, factor=t.plateau_factor, patience=t.plateau_patience,
            mode="min" if t.plateau_monitor.endswith("loss") else "max", min_delta=t.plateau_min_delta,
            cooldown=t.plateau_cooldown, min_lr=t.plateau_min_lr,
        )
        callbacks.append(plateau)
    backup.mkdir(parents=True, exist_ok=True)
    callbacks += [
        # kept until the cell is done (train.py removes the cell's backup): a run killed after
        # its last epoch but before its results are written does not train again
        keras.callbacks.BackupAndRestore(str(backup), double_checkpoint=True, delete_checkpoint=False),
        _ResumeState(backup, fingerprint, stopping, plateau, saved),  # after it: see the module's docstring
    ]
    model.fit(
        batches,
        epochs=start if stopped else t.epochs,  # a run that stopped early stays stopped
        validation_data=validation,
        validation_batch_size=EVAL_BATCH,
        callbacks=callbacks,
        shuffle=False,  # else Keras shuffles the order of a PyDataset's batches, with Python's `random`
        verbose=0,
    )
    if stopping is not None and stopping.stopped_epoch:
        print(f"early stop after epoch {stopping.stopped_epoch + 1}: {t.monitor} best at epoch "
              f"{stopping.best_epoch + 1}", flush=True)
    return start + len(epochs.seconds), epochs.seconds


def predict(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """The model's class probabilities (float32) for uint8 images, by `model.predict`."""
    return lambda x: np.asarray(model.predict(x, batch_size=EVAL_BATCH, verbose=0), np.float32).reshape(len(x), -1)
