"""What Keras 3's callbacks decide between epochs, as plain state both engines share.

`Stopping` is `keras.callbacks.EarlyStopping` (with `restore_best_weights`), `Plateau` is
`keras.callbacks.ReduceLROnPlateau`, and `rate_schedule` is the function a
`keras.callbacks.LearningRateScheduler` is given. The fast loop (`loop.Trainer`) runs them
itself, after every epoch, and keeps their state in its backup; the Keras engine
(`keras_fit`) hands the same settings to Keras' own callbacks. Their rules, as Keras 3 has
them (keras/src/callbacks/early_stopping.py, reduce_lr_on_plateau.py, monitor_callback.py):

- the first value seen is always an improvement; later ones improve when they beat the best
  by more than `min_delta` (val_loss downwards, val_accuracy upwards), compared in float32
  as `keras.ops.less` / `keras.ops.greater` compare Python floats;
- early stopping counts every epoch in `wait` and resets it on an improvement; it stops when
  `wait` reaches `patience` (never after the first epoch). With `restore_best_weights` the
  best epoch's weights are put back when training ends, stopped early or not (Keras'
  `on_train_end`); the weights of the first epoch count as the best until one improves;
- the plateau rule multiplies the rate by `factor` (never below `min_lr`) once `wait` epochs
  without improvement reach `patience`, then waits out `cooldown` epochs; the rate it reads
  is the optimizer's float32 variable, as Keras reads it.

This module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

MONITORS = ("val_loss", "val_accuracy")


def improved(monitor: str, current: float, best: float | None, min_delta: float) -> bool:
    """Keras' `MonitorCallback._is_improvement` for `monitor` (val_loss: lower is better)."""
    if best is None:
        return True
    if monitor.endswith("loss"):
        return bool(np.float32(current + abs(min_delta)) < np.float32(best))
    return bool(np.float32(current - abs(min_delta)) > np.float32(best))


@dataclass
class Stopping:
    """Keras' `EarlyStopping(monitor, min_delta, patience, restore_best_weights)`.

    `patience` 0 switches it off (nothing is watched or restored): Keras' own patience 0
    would stop at the first epoch that does not improve."""

    patience: int  # 0: never stop early
    monitor: str = "val_loss"
    min_delta: float = 0.0
    restore_best_weights: bool = True
    best: float | None = None
    best_epoch: int = -1
    wait: int = 0
    stopped: bool = False
    best_weights: list[np.ndarray] = field(default_factory=list)

    def update(self, epoch: int, value: float, weights: Callable[[], list[np.ndarray]]) -> bool:
        """Record 0-based `epoch`'s monitored `value`; True when training should stop now."""
        if not self.patience:
            return False
        if self.restore_best_weights and not self.best_weights:
            self.best_weights, self.best_epoch = weights(), epoch
        self.wait += 1
        if improved(self.monitor, value, self.best, self.min_delta):
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
            if self.restore_best_weights:
                self.best_weights = weights()
            return False
        self.stopped = self.wait >= self.patience and epoch > 0
        return self.stopped

    def weights_at_end(self) -> list[np.ndarray] | None:
        """The weights training ends with: the best epoch's (None: keep the last)."""
        return self.best_weights if self.patience and self.restore_best_weights and self.best_weights else None

    def state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "stopped": self.stopped}

    def restore(self, state: dict, best_weights: list[np.ndarray]) -> None:
        best = state["best"]
        self.best = None if best is None else float(best)
        self.best_epoch, self.wait = int(state["best_epoch"]), int(state["wait"])
        self.stopped, self.best_weights = bool(state["stopped"]), list(best_weights)


@dataclass
class Plateau:
    """Keras' `ReduceLROnPlateau(monitor, factor, patience, min_delta, cooldown, min_lr)`;
    `patience` 0 switches it off."""

    patience: int
    monitor: str = "val_loss"
    factor: float = 0.1
    min_lr: float = 0.0
    min_delta: float = 1e-4
    cooldown: int = 0
    best: float | None = None
    wait: int = 0
    cooldown_counter: int = 0

    def update(self, value: float, rate: float) -> float | None:
        """Record an epoch's monitored `value` at learning rate `rate` (the optimizer's
        float32 value); the reduced rate when it is time to reduce, else None."""
        if not self.patience:
            return None
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if improved(self.monitor, value, self.best, self.min_delta):
            self.best, self.wait = float(value), 0
            return None
        if self.cooldown_counter > 0:
            return None
        self.wait += 1
        if self.wait < self.patience:
            return None
        old = float(np.float32(rate))
        if not old > np.float32(self.min_lr):
            return None
        self.cooldown_counter, self.wait = self.cooldown, 0
        return max(old * self.factor, self.min_lr)

    def state(self) -> dict:
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def restore(self, state: dict) -> None:
        best = state["best"]
        self.best = None if best is None else float(best)
        self.wait, self.cooldown_counter = int(state["wait"]), int(state["cooldown_counter"])


def multiply_rate(epoch: int, current: float, decay_rate: float, decay_start: int) -> float:
    """The `multiply` schedule: the rate `current` of the epoch before, times `decay_rate` from
    epoch `decay_start` on (counted from 1, as the log prints epochs), for 0-based `epoch`.

    What seeds 002 and 004 meant with `LearningRateScheduler(lambda epoch, lr: ...)`, without
    their compounding (`lr * rate ** epoch` of the rate already decayed): the rate of epoch
    e >= decay_start is learning_rate * decay_rate ** (e - decay_start + 1), each step
    rounded to float32 as the optimizer holds it (plateau reductions carry on from there)."""
    return current * decay_rate if epoch + 1 >= decay_start else current


def rate_schedule(t) -> Callable[[int, float], float]:
    """The learning rate of 0-based `epoch` given the rate the optimizer holds (`current`), for
    the `train` knobs `t`: the function a `LearningRateScheduler` calls.

    `none`, `step` and `exponential` are functions of the epoch alone (`models.learning_rate_at`),
    except that `none` under a plateau rule keeps the rate the rule left; `multiply` carries on
    from the rate the optimizer holds."""
    from .models import learning_rate_at

    if t.schedule == "multiply":
        return lambda epoch, current: multiply_rate(epoch, current, t.decay_rate, t.decay_start)
    if t.schedule == "none" and t.plateau_patience:
        return lambda epoch, current: current
    return lambda epoch, current: learning_rate_at(epoch, t.learning_rate, t.schedule, t.decay_rate, t.decay_epochs)


def stopping_for(t) -> Stopping:
    return Stopping(t.patience, t.monitor, t.min_delta, t.restore_best_weights)


def plateau_for(t) -> Plateau:
    return Plateau(t.plateau_patience, t.plateau_monitor, t.plateau_factor, t.plateau_min_lr,
                   t.plateau_min_delta, t.plateau_cooldown)


def best_epochs(val_accuracy: list[float], val_loss: list[float]) -> dict:
    """A run's best epoch by validation accuracy and by validation loss (counted from 1; the
    first of equal values), from its per-epoch curves; None where a curve is empty."""
    out = {"best_val_accuracy": None, "best_val_accuracy_epoch": None, "min_val_loss": None, "min_val_loss_epoch": None}
    accuracy = np.asarray(val_accuracy, np.float64)
    if accuracy.size and not np.isnan(accuracy).all():
        at = int(np.nanargmax(accuracy))
        out["best_val_accuracy"], out["best_val_accuracy_epoch"] = float(accuracy[at]), at + 1
    loss = np.asarray(val_loss, np.float64)
    if loss.size and not np.isnan(loss).all():
        at = int(np.nanargmin(loss))
        out["min_val_loss"], out["min_val_loss_epoch"] = float(loss[at]), at + 1
    return out
