"""Keras training one graph call per epoch.

`model.fit` pays, for every batch, for its data iterator, optional-value checks, a nested
function call and its metric objects. At MNIST sizes that costs more than the arithmetic of
a small network. Here the uint8 images stay one constant tensor, each step gathers its batch
by index inside a `tf.while_loop`, loss and accuracy are summed in the loop, and Python runs
once per epoch. What callbacks did around `fit` is done between epochs, with Keras 3's rules
(`callbacks`): learning-rate schedules, early stopping on `val_loss` or `val_accuracy` with the
best epoch's weights restored at the end, reduction of the rate on a plateau, a backup for
resuming after an interruption (the callbacks' state in it), and the per-epoch log.

The model, optimizer and loss are plain Keras objects, so a `model.compile`d model saved
afterwards holds the optimizer state it trained with. The step runs under a `tf.distribute`
strategy: on several GPUs each replica takes its share of every batch and the optimizer sums
the gradients, so the batch, and the learning, are the same as on one device.
"""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from ..common import files
from . import keras_internals
from .callbacks import Plateau, Stopping
from .fresh import epoch_transforms

__all__ = ["EVAL_BATCH", "Plateau", "Stopping", "Trainer", "cross_entropy", "epoch_order", "use_fused_updates",
           "warp_batch"]

EVAL_BATCH = 1024


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """Row order of 0-based `epoch`: a function of (seed, epoch) only, so a resumed run
    draws the same batches an uninterrupted one would."""
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int32)


def warp_batch(images: tf.Tensor, transforms: tf.Tensor, fill_mode: str = "nearest") -> tf.Tensor:
    """uint8 image rows (b, side*side) resampled through one map each (`fresh.epoch_transforms`:
    ImageProjectiveTransformV3's 8-vectors, (b, 8)), bilinear, the frame extended by its nearest
    pixel (`nearest`) or by 0 (`constant`), rounded back to uint8. One op for the whole batch,
    inside the training graph: no float copy of the data set is ever made."""
    pixels = images.shape[-1]
    side = int(round(pixels**0.5))
    grid = tf.reshape(tf.cast(images, tf.float32), (-1, side, side, 1))
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=grid, transforms=transforms, output_shape=tf.constant([side, side], tf.int32),
        fill_value=tf.constant(0.0), interpolation="BILINEAR", fill_mode=fill_mode.upper(),
    )
    out = tf.clip_by_value(tf.floor(out + 0.5), 0.0, 255.0)  # round half up, as the static copies
    return tf.reshape(tf.cast(out, tf.uint8), (-1, pixels))


def cross_entropy(labels: tf.Tensor, proba: tf.Tensor, keras_loss: Callable) -> tf.Tensor:
    """Per-image sparse cross-entropy of a softmax output, as `keras_loss` computes it.

    Keras reads the logits its softmax activation kept on the output and calls
    `tf.nn.sparse_softmax_cross_entropy_with_logits`, which under op determinism (on for a
    CPU here) becomes a dozen small ops forward and more backward, a stand-in meant for GPUs,
    all on the chain between the last layer and the first gradient. TensorFlow's one-kernel op
    is deterministic on a CPU and hands its gradient over with the loss. Outputs without
    logits go to `keras_loss`."""
    logits = keras_internals.softmax_logits(proba)
    if logits is None:
        return keras_loss(labels, proba)
    return tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(features=logits, labels=labels)[0]


def use_fused_updates(optimizer: keras.optimizers.Optimizer) -> bool:
    """Compute plain SGD and Adam updates with TensorFlow's one-kernel ops.

    Keras spells the update of every variable as a dozen small tensor ops (Adam: moments,
    bias correction, square root, division). `ResourceApplyGradientDescent` and
    `ResourceApplyAdam` compute the same formulas in one kernel each, which matters when a
    step is a few hundred microseconds. Only `update_step` is replaced: clipping, weight
    decay, loss scaling, gradient summing over replicas and the iteration count stay
    Keras'. Returns False, changing nothing, for other optimizers (momentum, AMSGrad, ...).
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # under a LossScaleOptimizer
    if type(inner) is keras.optimizers.SGD and not inner.momentum:

        def update_step(gradient, variable, learning_rate):
            dtype = variable.dtype
            tf.raw_ops.ResourceApplyGradientDescent(
                var=keras_internals.resource_handle(variable), alpha=tf.cast(learning_rate, dtype), delta=tf.cast(gradient, dtype)
            )

    elif type(inner) is keras.optimizers.Adam and not inner.amsgrad:

        def update_step(gradient, variable, learning_rate):
            dtype = variable.dtype
            m, v = keras_internals.adam_slots(inner, variable)
            step = tf.cast(inner.iterations + 1, dtype)
            beta_1, beta_2 = tf.cast(inner.beta_1, dtype), tf.cast(inner.beta_2, dtype)
            tf.raw_ops.ResourceApplyAdam(
                var=keras_internals.resource_handle(variable),
                m=keras_internals.resource_handle(m), v=keras_internals.resource_handle(v),
                beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
                lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
                epsilon=tf.cast(inner.epsilon, dtype), grad=tf.cast(gradient, dtype),
            )

    else:
        return False
    keras_internals.replace_update_step(inner, update_step)
    return True


class Trainer:
    """Trains a built Keras `model` with `model.optimizer` on uint8 images and integer labels.

    `splits` > 1 computes every batch (every replica's share of it) as that many independent
    parts in one graph, their gradients summed: the same gradient as the whole batch (for
    models without batch normalisation), and parts that two CPU op streams compute side by side.
    `forward` computes the model's training-mode output in place of `model(x, training=True)`
    (the same maths with the model's own variables, e.g. `forward.training_forward`).
    """

    def __init__(self, model: keras.Model, batch_size: int, strategy: tf.distribute.Strategy, splits: int = 1,
                 forward: Callable | None = None):
        self.model, self.optimizer, self.strategy = model, model.optimizer, strategy
        self.forward = forward or (lambda xb: model(xb, training=True))
        self.batch_size, self.splits = batch_size, splits
        self.loss = keras.losses.SparseCategoricalCrossentropy(reduction=None)
        self._predict = None
        self.setup_seconds, self.epoch_seconds = 0.0, []
        use_fused_updates(self.optimizer)
        with strategy.scope():
            self.optimizer.build(model.trainable_variables)

    # --- graph functions -----------------------------------------------------------------

    def _train_epoch(self, x: np.ndarray, y: np.ndarray, fill_mode: str | None = None):
        """A function of one epoch's row order (and, with a `fill_mode`, of every row's fresh
        transform, `fresh.epoch_transforms`) that trains on every batch of it once."""
        model, optimizer, strategy, loss_fn = self.model, self.optimizer, self.strategy, self.loss
        forward = self.forward
        replicas, splits = strategy.num_replicas_in_sync, self.splits
        xs, ys = tf.constant(x), tf.constant(y.astype(np.int32))
        batch = self.batch_size

        def replica_step(rows, batch_rows, transforms):
            # each replica takes every `replicas`-th row of the batch; the loss is a mean over
            # the whole batch, so the summed gradients equal the one-device gradient
            me = tf.distribute.get_replica_context().replica_id_in_sync_group
            mine = rows[me::replicas] if replicas > 1 else rows
            # a batch of fewer rows than parts (or of unknown size) is not split
            parts = splits if (mine.shape[0] or 0) >= splits else 1
            with tf.GradientTape() as tape:
                totals, hits = [], []
                for part in range(parts):
                    these = mine[part::parts] if parts > 1 else mine
                    xb, yb = tf.gather(xs, these), tf.gather(ys, these)
                    if fill_mode is not None:  # fresh augmentation: this epoch's map of each row
                        xb = warp_batch(xb, tf.gather(transforms, these), fill_mode)
                    proba = forward(xb)
                    totals.append(tf.reduce_sum(cross_entropy(yb, proba, loss_fn)))
                    hits.append(tf.reduce_sum(tf.cast(tf.equal(tf.argmax(proba, -1, output_type=tf.int32), yb), tf.float64)))
                total = tf.add_n(totals)
                loss = total / batch_rows
                if model.losses:  # L1/L2 penalties: counted once over all replicas
                    penalty = tf.add_n(model.losses) / replicas
                    loss += penalty
                    total += penalty * batch_rows
                scaled = optimizer.scale_loss(loss)
            grads = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return tf.cast(total, tf.float64), tf.add_n(hits)

        def step(rows, loss_sum, hits, transforms):
            batch_rows = tf.cast(tf.shape(rows)[0], tf.float32)
            step_loss, step_hits = strategy.run(replica_step, args=(rows, batch_rows, transforms))
            return (
                loss_sum + strategy.reduce("SUM", step_loss, axis=None),
                hits + strategy.reduce("SUM", step_hits, axis=None),
            )

        @tf.function
        def whole_batches(order, transforms):
            # whole batches as rows of a matrix, so every step has a static shape (about 1.4x
            # faster on a CPU than slicing a dynamic one)
            full = order.shape[0] // batch
            grid = tf.reshape(order[: full * batch], (full, batch))
            zero = tf.constant(0.0, tf.float64)
            _, loss_sum, hits = tf.while_loop(
                lambda i, *_: i < full,
                lambda i, loss_sum, hits: (i + 1, *step(grid[i], loss_sum, hits, transforms)),
                (tf.constant(0), zero, zero),
            )
            return loss_sum, hits

        # The last, partial batch is a call of its own. Traced into the loop's graph after
        # the loop, it could start on the variables (the weights, a dropout layer's seed,
        # batch norm's statistics) before the loop's last step had updated them: seen on a
        # 2-core EPYC with two op streams, a CNN with batch norm and dropout ended an epoch
        # on different weights run after run, explicit control dependencies notwithstanding.
        # A function call returns only after every update in it has run.
        @tf.function
        def last_batch(rows, transforms, loss_sum, hits):
            return step(rows, loss_sum, hits, transforms)

        def train_epoch(order, transforms):
            n = int(order.shape[0])
            loss_sum, hits = whole_batches(order, transforms)
            if n % batch:
                loss_sum, hits = last_batch(order[n - n % batch:], transforms, loss_sum, hits)
            return loss_sum / n, hits / n

        def trace(n: int, transforms: tf.TensorSpec | tf.Tensor) -> None:
            """Build the graphs of an epoch of `n` rows ahead of the first epoch."""
            whole_batches.get_concrete_function(tf.TensorSpec([n], tf.int32), transforms)
            if n % batch:
                scalar = tf.TensorSpec([], tf.float64)
                last_batch.get_concrete_function(tf.TensorSpec([n % batch], tf.int32), transforms, scalar, scalar)

        train_epoch.trace = trace
        return train_epoch

    def _predict_graph(self):
        """One graph for every prediction: class probabilities in batches of EVAL_BATCH."""
        model = self.model
        n_pixels = model.inputs[0].shape[-1]

        @tf.function(input_signature=[tf.TensorSpec([None, n_pixels], tf.uint8)])
        def run(xs):
            n = tf.shape(xs)[0]
            steps = (n + EVAL_BATCH - 1) // EVAL_BATCH

            def body(i, parts):
                part = model(xs[i * EVAL_BATCH: tf.minimum((i + 1) * EVAL_BATCH, n)], training=False)
                return i + 1, parts.write(i, tf.cast(part, tf.float32))

            parts = tf.TensorArray(tf.float32, size=steps, infer_shape=False)
            return tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), parts))[1].concat()

        return run

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The model's class probabilities (float32) for uint8 images."""
        if self._predict is None:
            self._predict = self._predict_graph()
        return self._predict(x).numpy().reshape(len(x), -1)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(loss, accuracy) of the model on (x, y), as Keras reports them: penalties included."""
        proba = self.predict(x)
        loss = float(tf.reduce_mean(self.loss(y.astype(np.int32), proba)))
        # weight penalties; an activity penalty is a tensor of the prediction graph, not a value
        # here, so the fast loop's val_loss leaves it out (engine: keras counts it)
        penalties = [p for p in self.model.losses if not tf.is_symbolic_tensor(p)]
        if penalties:
            loss += float(tf.add_n(penalties))
        return loss, float((proba.argmax(1) == y).mean())

    # --- state ---------------------------------------------------------------------------

    def weights(self) -> list[np.ndarray]:
        return [v.numpy() for v in self.model.variables]

    def set_weights(self, values: list[np.ndarray]) -> None:
        for variable, value in zip(self.model.variables, values):
            variable.assign(value)

    def save_backup(self, path: Path, fingerprint: str, epochs_done: int, stopping: Stopping,
                    plateau: Plateau | None = None) -> None:
        """Everything a resumed run needs: weights, optimizer slots and learning rate, RNG
        states, and the state of early stopping (its best weights too) and of the plateau rule."""
        arrays = {f"model_{i}": v for i, v in enumerate(self.weights())}
        arrays.update({f"optimizer_{i}": v.numpy() for i, v in enumerate(self.optimizer.variables)})
        arrays.update({f"best_{i}": v for i, v in enumerate(stopping.best_weights)})
        state = {"fingerprint": fingerprint, "epochs_done": epochs_done, "stopping": stopping.state(),
                 "plateau": (plateau or Plateau(0)).state()}
        path.parent.mkdir(parents=True, exist_ok=True)
        files.save_npz(path, state=np.array(json.dumps(state)), **arrays)

    def load_backup(self, path: Path, fingerprint: str, stopping: Stopping, plateau: Plateau | None = None) -> int:
        """Restore a backup of the same run; returns the epochs it had finished (0: none usable).

        A backup is used only by the run that wrote it (the same `fingerprint`: parameters,
        data and code) and only when every array of it reads back in its variable's shape.
        Anything else, a half-written or damaged file included, is discarded with one line
        and the run starts over; nothing is restored from it."""
        if not path.exists():
            return 0
        model_vars, opt_vars = self.model.variables, self.optimizer.variables
        try:
            arrays = files.load_npz(path)
            state = json.loads(str(arrays["state"]))
            same_run = state["fingerprint"] == fingerprint
            saved_model = [arrays[f"model_{i}"] for i in range(len(model_vars))]
            saved_opt = [arrays[f"optimizer_{i}"] for i in range(len(opt_vars))]
            best = [arrays[f"best_{i}"] for i in range(len(model_vars)) if f"best_{i}" in arrays]
            epochs_done = int(state["epochs_done"])
            # both read back before either is changed: a damaged state restores nothing
            check_stopping, check_plateau = Stopping(1), Plateau(1)
            check_stopping.restore(state["stopping"], best)
            check_plateau.restore(state["plateau"])
        except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as err:
            reason = f"it cannot be read: {type(err).__name__}: {' '.join(str(err).split())}"
        else:
            fits = all(a.shape == tuple(v.shape) for a, v in zip(saved_model + saved_opt, list(model_vars) + list(opt_vars)))
            fits = fits and len(best) in (0, len(model_vars)) and all(
                a.shape == tuple(v.shape) for a, v in zip(best, model_vars))
            reason = None if same_run and fits else "written for other parameters, data or code"
        if reason:
            print(f"discarding {path} ({reason})", flush=True)
            path.unlink(missing_ok=True)
            return 0
        self.set_weights(saved_model)
        for variable, value in zip(opt_vars, saved_opt):
            variable.assign(value)
        stopping.restore(state["stopping"], best)
        if plateau is not None:
            plateau.restore(state["plateau"])
        return epochs_done

    # --- the epochs ----------------------------------------------------------------------

    def fit(
        self,
        data: tuple[np.ndarray, np.ndarray],
        validation: tuple[np.ndarray, np.ndarray] | None,
        *,
        epochs: int,
        seed: int,
        learning_rate: Callable[[int, float], float],
        backup: Path,
        fingerprint: str,
        log: Callable[[dict[str, float]], None],
        patience: int = 0,
        stopping: Stopping | None = None,
        plateau: Plateau | None = None,
        fresh: dict | None = None,
        rewind: Callable[[int], None] = lambda epochs: None,
    ) -> int:
        """Train until `epochs` or early stopping; returns the number of epochs trained in all.

        `learning_rate(epoch, current)` gives the rate of 0-based `epoch` from the rate the
        optimizer holds (what a `LearningRateScheduler` is given). `stopping` (by default early
        stopping on val_loss with `patience`) and `plateau` (off by default) follow Keras 3's
        `EarlyStopping` and `ReduceLROnPlateau` (`callbacks`): with `restore_best_weights`, the
        model ends with its best epoch's weights whether or not it stopped early.

        `fresh` (the augment stage's settings of `augment.mode: fresh`) transforms every image
        anew every epoch inside the graph, with the maps `fresh.epoch_transforms` draws from
        (the augment seed, `seed`, epoch).

        `validation` None (a refit on every labelled row) logs no val_loss or val_accuracy;
        early stopping and the plateau rule, which watch them, must then be off.

        `rewind` learns, before the first epoch, how many epochs the backup holds (0 without
        one), so the log can drop what it logged beyond them.

        `epoch_seconds` holds, afterwards, the wall time of each epoch this call trained (its
        training pass and its validation), and `setup_seconds` the time spent before the first
        epoch building the epoch's and the prediction's graphs, which no epoch is charged for."""
        x, y = data
        began = time.perf_counter()
        train_epoch = self._train_epoch(x, y, fresh["fill_mode"] if fresh else None)
        none = tf.zeros((0, 8), tf.float32)  # no fresh augmentation: no maps
        train_epoch.trace(len(x), tf.TensorSpec([len(x), 8], tf.float32) if fresh else none)
        if self._predict is None:
            self._predict = self._predict_graph()
        self._predict.get_concrete_function()
        self.setup_seconds, self.epoch_seconds = time.perf_counter() - began, []
        side = int(round(x.shape[-1] ** 0.5))
        stopping = stopping if stopping is not None else Stopping(patience)
        plateau = plateau if plateau is not None else Plateau(0)
        if validation is None and (stopping.patience or plateau.patience):
            raise ValueError("early stopping and the plateau rule watch validation rows, and none are given")
        start = self.load_backup(backup, fingerprint, stopping, plateau)
        rewind(start)
        epoch = start - 1
        for epoch in range(start, epochs if not stopping.stopped else start):
            rate = float(learning_rate(epoch, self.current_rate()))
            self.optimizer.learning_rate = rate
            began = time.perf_counter()
            maps = tf.constant(epoch_transforms(len(x), side, fresh, seed, epoch)) if fresh else none
            loss, accuracy = (float(v) for v in train_epoch(tf.constant(epoch_order(len(x), seed, epoch)), maps))
            metrics = {"loss": loss, "accuracy": accuracy}
            if validation is not None:
                metrics["val_loss"], metrics["val_accuracy"] = self.evaluate(*validation)
            metrics["learning_rate"] = rate
            seconds = time.perf_counter() - began
            self.epoch_seconds.append(seconds)
            print(f"Epoch {epoch + 1}/{epochs}", flush=True)
            print(f"{seconds:.1f}s - " + " - ".join(f"{k}: {v:.4g}" for k, v in metrics.items()), flush=True)
            log(metrics)
            stop = stopping.update(epoch, metrics.get(stopping.monitor), self.weights)
            reduced = plateau.update(metrics.get(plateau.monitor), self.current_rate())
            if reduced is not None:
                self.optimizer.learning_rate = reduced
                print(f"Epoch {epoch + 1}: {plateau.monitor} on a plateau, learning rate reduced to {reduced:.4g}",
                      flush=True)
            self.save_backup(backup, fingerprint, epoch + 1, stopping, plateau)
            if stop:
                print(f"early stop after epoch {epoch + 1}: {stopping.monitor} best at epoch {stopping.best_epoch + 1}",
                      flush=True)
                break
        best = stopping.weights_at_end()
        if best is not None:
            if stopping.best_epoch != epoch:
                print(f"restoring the weights of epoch {stopping.best_epoch + 1}, the best by {stopping.monitor}",
                      flush=True)
            self.set_weights(best)
        return epoch + 1

    def current_rate(self) -> float:
        """The learning rate the optimizer holds (its float32 variable), as Keras' callbacks read it."""
        return float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))
