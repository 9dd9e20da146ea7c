"""train stage: fit one design cell and write its model, history, timings and predictions.

Run as `python -m mnist_doe.train <cell>`; dvc.yaml fans this stage out over doe.cells.
The only stage that imports TensorFlow, and the only one that may use a GPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np

from . import files, params, paths
from .errors import run_stage

BACKUP_DIR = Path(".train_backup")


def cell_inputs() -> dict[str, np.ndarray]:
    """Load the arrays a cell trains and predicts on: all uint8 pixels, int64 labels."""
    clean = files.load_npz(paths.CLEAN_TRAIN)
    split = files.load_npz(paths.SPLIT)
    augmented = files.load_npz(paths.AUGMENTED_TRAIN)
    test = files.load_npz(paths.CLEAN_TEST)
    return {
        "x_fit": augmented["pixels"],
        "y_fit": augmented["y"],
        "x_train": clean["pixels"][split["train"]],
        "y_train": clean["y"][split["train"]],
        "x_val": clean["pixels"][split["val"]],
        "y_val": clean["y"][split["val"]],
        "x_test": test["pixels"],
    }


def _history_logger(live):
    import keras

    class HistoryLogger(keras.callbacks.Callback):
        """Log every epoch's metrics to DVCLive, so learning curves are `dvc plots`."""

        def on_epoch_end(self, epoch, logs=None):
            for name, value in (logs or {}).items():
                if name != "learning_rate":
                    live.log_metric(name, float(value))
            live.next_step()

    return HistoryLogger()


def fit_keras(cell: params.Cell, data: dict, n_classes: int, live, backup: Path) -> tuple:
    """Fit a Keras family on uint8 batches; returns (model, predict function, epochs run)."""
    import keras
    import tensorflow as tf

    from .models import BUILDERS, optimizer

    t = cell.train
    keras.utils.set_random_seed(t.seed)
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        tf.config.experimental.enable_op_determinism()
    strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()

    n_pixels = data["x_fit"].shape[1]
    with strategy.scope():
        model = BUILDERS[cell.family](n_pixels, n_classes, cell.layers, cell.nodes, t.dropout)
        model.compile(
            optimizer=optimizer(t.optimizer, t.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            steps_per_execution=t.steps_per_execution,
        )

    callbacks = [
        keras.callbacks.BackupAndRestore(str(backup)),
        _history_logger(live),
    ]
    if t.patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(patience=t.patience, restore_best_weights=True)
        )
    history = model.fit(
        _batches(data["x_fit"], data["y_fit"], t.batch_size, t.seed),
        validation_data=_batches(data["x_val"], data["y_val"], 1024, None),
        epochs=t.epochs,
        callbacks=callbacks,
        shuffle=False,  # the batches are already shuffled, seeded, by _batches
        verbose=2,
    )

    def predict(x: np.ndarray) -> np.ndarray:
        return model.predict(_batches(x, None, 1024, None), verbose=0).astype(np.float32)

    return model, predict, len(history.epoch)


def _batches(x: np.ndarray, y: np.ndarray | None, batch_size: int, seed: int | None):
    """A tf.data pipeline that gathers whole uint8 batches by index (shuffled when seeded)."""
    import tensorflow as tf

    xs = tf.constant(x)
    order = tf.data.Dataset.range(len(x))
    if seed is not None:
        order = order.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    order = order.batch(batch_size)
    if y is None:
        batches = order.map(lambda idx: tf.gather(xs, idx))
    else:
        ys = tf.constant(y)
        batches = order.map(lambda idx: (tf.gather(xs, idx), tf.gather(ys, idx)))
    return batches.prefetch(tf.data.AUTOTUNE)


def fit_baseline(cell: params.Cell, data: dict, live) -> tuple:
    """Fit a scikit-learn baseline; returns (fitted estimator, predict function, epochs run)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    t = cell.train
    x = data["x_fit"].astype(np.float32) / 255
    y = data["y_fit"]
    classes = np.unique(y)
    if cell.family == "logreg":
        model = LogisticRegression(max_iter=100 * t.epochs, random_state=t.seed)
        model.fit(x, y)
        epochs = 1
        _log_baseline_epoch(live, model, x, y, data)
    else:
        model = MLPClassifier(
            hidden_layer_sizes=(cell.nodes,) * cell.layers,
            learning_rate_init=t.learning_rate if t.optimizer == "adam" else 0.001,
            batch_size=t.batch_size,
            random_state=t.seed,
        )
        for _ in range(t.epochs):
            model.partial_fit(x, y, classes=classes)
            _log_baseline_epoch(live, model, x, y, data)
        epochs = t.epochs

    def predict(pixels: np.ndarray) -> np.ndarray:
        return model.predict_proba(pixels.astype(np.float32) / 255).astype(np.float32)

    return model, predict, epochs


def _log_baseline_epoch(live, model, x, y, data) -> None:
    live.log_metric("accuracy", float(model.score(x, y)))
    live.log_metric("val_accuracy", float(model.score(data["x_val"].astype(np.float32) / 255, data["y_val"])))
    live.next_step()


def save_model(model, family: str, out_dir: Path) -> None:
    """Keras models as .keras; baselines as plain arrays (never pickle)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    if family in ("logreg", "mlp"):
        arrays = {"classes": model.classes_}
        if family == "logreg":
            arrays.update(coef=model.coef_, intercept=model.intercept_)
        else:
            for i, (w, b) in enumerate(zip(model.coefs_, model.intercepts_)):
                arrays[f"weights_{i}"], arrays[f"bias_{i}"] = w, b
        files.save_npz(out_dir / "model.npz", **arrays)
    else:
        with files.atomic_path(out_dir / "model.keras", ".keras") as tmp:
            model.save(tmp)


def train_cell(cell: params.Cell) -> dict:
    """Train one cell end to end and write all of its outputs; returns its summary."""
    from dvclive import Live

    data = cell_inputs()
    n_classes = len(files.read_json(paths.LABEL_MAP)["classes"])
    backup = BACKUP_DIR / cell.name
    resuming = backup.exists()
    live = Live(dir=str(paths.LIVE_DIR / cell.name), resume=resuming, save_dvc_exp=False, dvcyaml=False)

    start = time.perf_counter()
    if cell.family in ("logreg", "mlp"):
        model, predict, epochs_run = fit_baseline(cell, data, live)
    else:
        model, predict, epochs_run = fit_keras(cell, data, n_classes, live, backup)
    train_seconds = time.perf_counter() - start

    summary = {
        "cell": cell.name,
        "family": cell.family,
        "layers": cell.layers,
        "nodes": cell.nodes,
        "epochs": epochs_run,
        "train_rows": int(len(data["x_fit"])),
        "train_seconds": round(train_seconds, 3),
        "images_per_second": round(epochs_run * len(data["x_fit"]) / train_seconds, 1),
        "params": {k: v for k, v in vars(cell.train).items()},
    }
    files.save_npz(
        paths.PREDICTIONS_DIR / f"{cell.name}.npz",
        train=predict(data["x_train"]),
        val=predict(data["x_val"]),
        test=predict(data["x_test"]),
    )
    files.write_json(paths.PREDICTIONS_DIR / f"{cell.name}.json", summary)
    save_model(model, cell.family, paths.MODELS_DIR / cell.name)
    live.log_metric("train_seconds", summary["train_seconds"], plot=False)
    live.log_metric("images_per_second", summary["images_per_second"], plot=False)
    live.end()
    shutil.rmtree(backup, ignore_errors=True)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mnist_doe.train", description=__doc__)
    parser.add_argument("cell", help="name of a design cell in params.yaml doe.cells")
    args = parser.parse_args(argv)
    p = params.load()
    if args.cell not in p.cells:
        raise params.ParamsError(
            f"no cell {args.cell!r} in doe.cells (cells: {', '.join(p.cells)})"
        )
    summary = train_cell(p.cells[args.cell])
    print(
        f"train@{summary['cell']}: {summary['epochs']} epochs on {summary['train_rows']} rows "
        f"in {summary['train_seconds']:.1f} s ({summary['images_per_second']:.0f} images/s)"
    )


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run_stage("train", main)
