"""train stage: fit one design cell and write its model, history, timings and predictions.

Run as `python -m mnist_doe.train <cell>`; dvc.yaml fans this stage out over doe.cells.
The only stage that imports TensorFlow, and the only one that may use a GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import clock, files, params, paths
from .common.errors import run_stage
from .common.progress import progress
from .common.results import validation_rows
from .common.words import plural

BACKUP_DIR = Path(".train_backup")
ENGINE_DIR = Path(__file__).resolve().parent / "engine"
# this process's phases (imports, loading, building, tracing, epochs, ...), in timings/<cell>.json
LAPS = clock.Laps()
# rows a Keras model predicts per call: a multiple of the engines' prediction batch
# (engine.loop.EVAL_BATCH), so every batch holds the rows it holds in one call over the whole
# set, and the probabilities are the same to the bit
PREDICT_ROWS = 8 * 1024


def code_version() -> str:
    """A hash of the code a backup holds the state of: this file and the engine's sources."""
    digest = hashlib.sha256()
    for source in [Path(__file__).resolve(), *sorted(ENGINE_DIR.glob("*.py"))]:
        digest.update(f"{source.name}\0{source.stat().st_size}\0".encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def arrays_digest(arrays: dict) -> str:
    """A hash of the contents of `arrays` (a mapping of names to arrays or to such mappings):
    every array's name, dtype, shape and bytes (about 0.6 s a GB here)."""
    digest = hashlib.sha256()

    def add(prefix: str, value) -> None:
        if isinstance(value, dict):
            for name in sorted(value):
                add(f"{prefix}/{name}", value[name])
            return
        array = np.asarray(value)
        digest.update(json.dumps([prefix, array.dtype.str, list(array.shape)]).encode())
        digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))

    add("", arrays)
    return digest.hexdigest()


@dataclass(frozen=True)
class Run:
    """One training of a cell: fold `fold`, replicate `replicate`."""

    fold: int
    replicate: int
    name: str  # "" when the cell trains once; else e.g. "fold2-rep1"


def plan_runs(n_folds: int, replicates: int) -> list[Run]:
    single = n_folds * replicates == 1
    return [
        Run(k, r, "" if single else f"fold{k + 1}-rep{r + 1}")
        for k in range(n_folds)
        for r in range(replicates)
    ]


def load_inputs() -> dict[str, dict[str, np.ndarray]]:
    """Everything a cell reads: the clean files, the split and the augmented set (all uint8)."""
    return {
        "clean": files.load_npz(paths.CLEAN_TRAIN),
        "test": files.load_npz(paths.CLEAN_TEST),
        "split": files.load_npz(paths.SPLIT),
        "augmented": files.load_npz(paths.AUGMENTED_TRAIN),
    }


def run_inputs(inputs: dict, fold: int) -> dict[str, np.ndarray]:
    """The arrays of one fold: augmented rows of its own fit rows only, its validation rows."""
    split, augmented, clean = inputs["split"], inputs["augmented"], inputs["clean"]
    fit_rows = split[f"fit_{fold}"]
    own = np.isin(augmented["source"], fit_rows)
    val_file = inputs["test"] if str(split["val_source"]) == "test" else clean
    val_rows = split[f"val_{fold}"]
    # augment.mode fresh: the rows are unaugmented, and these settings transform them every epoch
    fresh = {"fresh": json.loads(str(augmented["fresh"]))} if "fresh" in augmented else {}
    return {
        **fresh,
        "x_fit": augmented["pixels"] if own.all() else augmented["pixels"][own],
        "y_fit": augmented["y"] if own.all() else augmented["y"][own],
        "x_train": clean["pixels"][fit_rows],
        "y_train": clean["y"][fit_rows],
        "x_val": val_file["pixels"][val_rows],
        "y_val": val_file["y"][val_rows],
        "x_test": inputs["test"]["pixels"],
    }


def read_curve(path: Path, name: str) -> list[float]:
    """The values of a DVCLive curve file (`step` and `name` columns), in step order; [] when absent."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    if not lines:
        return []
    columns = lines[0].split("\t")
    step, value = columns.index("step"), columns.index(name)
    rows = sorted((int(cells[step]), float(cells[value])) for row in lines[1:] if len(cells := row.split("\t")) == len(columns))
    return [v for _, v in rows]


def cell_best_epochs(curves: list[dict[str, list[float]]]) -> dict:
    """A cell's best epochs: those of the mean of its runs' curves, over the epochs every run
    trained (one run: its own)."""
    from .engine.callbacks import best_epochs

    mean = {}
    for name in ("val_accuracy", "val_loss"):
        length = min(len(c[name]) for c in curves)
        mean[name] = np.mean([c[name][:length] for c in curves], axis=0) if length else []
    return best_epochs(mean["val_accuracy"], mean["val_loss"])


class RunLog:
    """DVCLive for one run: epochs as steps, metric names prefixed by the run's name.

    With a `backup` folder (the run's folder under .train_backup/), a copy of the run's
    curves is kept in it after every epoch: DVC removes a stage's outputs, these curves
    among them, before it reruns the stage, and a resumed run restores its earlier epochs
    from the copy."""

    def __init__(self, live, run: Run, backup: Path | None = None):
        self.live, self.prefix = live, f"{run.name}/" if run.name else ""
        self.curves = Path(live.plots_dir) / "metrics" / (run.name or "")
        self.copies = backup / "curves" if backup is not None else None

    def rewind(self, epochs: int) -> None:
        """Continue the learning curve after `epochs` finished epochs: its rows of those
        epochs, from the backup's copy where there is one. A run killed after logging an
        epoch but before backing it up trains that epoch again; its rows (and any of a run
        that restarts from scratch) are dropped, so every epoch has one row."""
        # this run's curves only: runs of a cell have subfolders
        sources = {curve.name: curve for curve in self.curves.glob("*.tsv")}
        if self.copies is not None:
            sources.update({copy.name: copy for copy in self.copies.glob("*.tsv")})
        for name, source in sources.items():
            lines = source.read_text().splitlines()
            columns = lines[0].split("\t") if lines else []
            if "step" not in columns:  # not a curve DVCLive wrote whole: nothing of it is kept
                (self.curves / name).unlink(missing_ok=True)
                continue
            step = columns.index("step")
            kept = [row for row in lines[1:] if len(cells := row.split("\t")) == len(columns)
                    and cells[step].isdigit() and int(cells[step]) < epochs]
            if source.parent != self.curves or len(kept) < len(lines) - 1:
                files.write_text(self.curves / name, "\n".join([lines[0], *kept]) + "\n")
        self.live.step = epochs
        self._keep()

    def log_metric(self, name: str, value: float) -> None:
        self.live.log_metric(self.prefix + name, value)

    def curve(self, name: str) -> list[float]:
        """The values of metric `name`, one per epoch (this run's, resumed epochs included)."""
        return read_curve(self.curves / f"{name}.tsv", name)

    def best_epochs(self) -> dict:
        """The run's best epoch by validation accuracy and by validation loss (`callbacks.best_epochs`)."""
        from .engine.callbacks import best_epochs

        return best_epochs(self.curve("val_accuracy"), self.curve("val_loss"))

    def next_step(self) -> None:
        self.live.next_step()
        self._keep()

    def _keep(self) -> None:
        """Copy the run's curves, as they stand, into the backup folder."""
        if self.copies is None:
            return
        for copy in self.copies.glob("*.tsv"):
            if not (self.curves / copy.name).exists():
                copy.unlink()
        for curve in self.curves.glob("*.tsv"):
            files.write_text(self.copies / curve.name, curve.read_text())


def fit_keras(cell: params.Cell, data: dict, n_classes: int, live, backup: Path, learning_rate=None) -> tuple:
    """Fit a Keras family on uint8 images; returns (model, predict function, epochs run, each
    epoch's seconds). Without `x_val` in `data` (a refit on every labelled row) it trains with
    no validation (early stopping and the plateau rule off); `learning_rate(epoch, current)`
    replaces the schedule the cell's knobs give (`callbacks.rate_schedule`).

    On a CPU, ops run deterministically, so the same seed gives the same model, and the cores
    run two streams of ops (`hardware.cpu_plan`); several GPUs share every batch.
    `mixed_precision` computes in float16 on a GPU, in bfloat16 on a CPU with bfloat16
    instructions.
    """
    from .engine import hardware

    tf = hardware.import_tensorflow()
    import keras

    from .engine.callbacks import plateau_for, rate_schedule, stopping_for
    from .engine.loop import Trainer
    from .engine.models import build, optimizer, optimizer_options
    from .engine.forward import training_forward

    LAPS.lap("import")
    t = cell.train
    # layer names count up across the models of a process: start from zero, so the saved model
    # (its names and the weights file keyed by them) is the same in one process as in another
    keras.backend.clear_session()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
        splits = 1
        print(f"train: {plural(len(gpus), 'GPU')}", flush=True)
    else:
        # a batch in parts only where no batch statistic (batch norm, activity penalty) spans it
        plan = hardware.cpu_plan(cell.family, t.batch_size, hardware.cpu_cores(), cell.net.whole_batches)
        intra, inter = hardware.configure_threads(plan)
        strategy, splits = tf.distribute.get_strategy(), plan.splits
        tf.config.experimental.enable_op_determinism()
        halves = f", each batch computed in {splits} parts" if splits > 1 else ""
        print(f"train: CPU, {plural(inter, 'op stream')} of {plural(intra, 'thread')}{halves}", flush=True)
    keras.utils.set_random_seed(t.seed)

    n_pixels = data["x_fit"].shape[1]
    params.check_fits(cell, int(round(n_pixels**0.5)))  # params.yaml was checked on 28x28 images
    # the builders keep the softmax output in float32 under either mixed policy
    policy = hardware.precision_policy(t.mixed_precision, len(gpus), hardware.cpu_has_bfloat16())
    keras.mixed_precision.set_global_policy(policy)
    try:
        with strategy.scope():
            model = build(cell.family, n_pixels, n_classes, cell.net)
            # compiled for its saved form (optimizer and loss travel with model.keras); Trainer fits it
            model.compile(
                optimizer=optimizer(t.optimizer, t.learning_rate, **optimizer_options(t.optimizer, t)),
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
            )
            if t.engine == "fast":  # engine keras: model.fit trains the model as Keras built it
                # dropout as a multiplication by Keras' own mask; on a CPU, stacked LSTMs train
                # through a written-out backward pass (a GPU keeps cuDNN's)
                forward = training_forward(model, lstms=not gpus)
                trainer = Trainer(model, t.batch_size, strategy, splits, forward=forward)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    LAPS.lap("build")

    def log(metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            live.log_metric(name, value)
        live.next_step()

    # the backup serves this run only: these parameters, these arrays, this code
    fingerprint = json.dumps(
        [cell.family, cell.layers, cell.nodes, dataclasses.asdict(t), list(data["x_fit"].shape), n_classes,
         arrays_digest(data), code_version()]
    )
    validation = (data["x_val"], data["y_val"]) if "x_val" in data else None
    if t.engine == "keras":
        from .engine import keras_fit

        print("train: engine keras (model.fit with Keras' callbacks)", flush=True)
        epochs_run, epoch_seconds = keras_fit.fit(
            model, (data["x_fit"], data["y_fit"]), validation, t, backup=backup / "keras", fingerprint=fingerprint,
            log=log, rewind=live.rewind, fresh=data.get("fresh"), learning_rate=learning_rate,
        )
        LAPS.lap("fit")
        LAPS.move("fit", "epochs", sum(epoch_seconds))
        return model, keras_fit.predict(model), epochs_run, epoch_seconds
    print("train: engine fast (one graph call per epoch)", flush=True)
    epochs_run = trainer.fit(
        (data["x_fit"], data["y_fit"]),
        validation,
        epochs=t.epochs,
        seed=t.seed,
        learning_rate=learning_rate or rate_schedule(t),
        stopping=stopping_for(t),
        plateau=plateau_for(t),
        fresh=data.get("fresh"),
        backup=backup / "state.npz",
        fingerprint=fingerprint,
        log=log,
        rewind=live.rewind,
    )
    LAPS.lap("fit")
    LAPS.move("fit", "trace", trainer.setup_seconds)
    LAPS.move("fit", "epochs", sum(trainer.epoch_seconds))
    return model, trainer.predict, epochs_run, trainer.epoch_seconds


def mlp_options(cell: params.Cell) -> dict:
    """MLPClassifier's arguments for an mlp cell: its solver is the cell's optimizer (sgd or
    adam), at the cell's learning rate; a constant rate or inverse scaling (`power_t`); L2
    penalty `alpha`; a width per layer; the optimizer knobs that are set (else sklearn's)."""
    t, net = cell.train, cell.net
    options = dict(
        hidden_layer_sizes=tuple(net.nodes), solver=t.optimizer, learning_rate_init=t.learning_rate,
        learning_rate="invscaling" if t.schedule == "invscaling" else "constant", power_t=net.power_t,
        alpha=net.alpha, batch_size=t.batch_size, random_state=t.seed,
    )
    knobs = {"sgd": {"momentum": "momentum", "nesterov": "nesterovs_momentum"},
             "adam": {"beta_1": "beta_1", "beta_2": "beta_2", "epsilon": "epsilon"}}[t.optimizer]
    options.update({theirs: getattr(t, ours) for ours, theirs in knobs.items() if getattr(t, ours) is not None})
    return options


def fit_baseline(cell: params.Cell, data: dict, live) -> tuple:
    """Fit a scikit-learn baseline; returns (fitted estimator, predict function, epochs run,
    each epoch's seconds: its fit and its scoring).

    logreg: LogisticRegression with `C` and `solver`, up to 100 x epochs iterations, one
    logged step. mlp: one `partial_fit` pass over the rows per epoch (`mlp_options`); with
    `patience` > 0 it stops when `monitor` (val_loss or val_accuracy) has not improved by
    more than `min_delta` for `patience` epochs, and with `restore_best_weights` ends with
    the best epoch's weights, stopped early or not, as the Keras families do. Each step logs
    loss, accuracy, val_loss and val_accuracy; without `x_val` in `data` (a refit on every
    labelled row), loss and accuracy only, and no early stopping."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    LAPS.lap("import")
    t = cell.train
    x = data["x_fit"].astype(np.float32) / 255
    y = data["y_fit"]
    x_val, y_val = (data["x_val"].astype(np.float32) / 255, data["y_val"]) if "x_val" in data else (None, None)
    if x_val is None and t.patience:
        raise ValueError("early stopping watches validation rows, and none are given")
    classes = np.unique(y)
    epoch_seconds = []
    began = time.perf_counter()
    if cell.family == "logreg":
        model = LogisticRegression(C=cell.net.C, solver=cell.net.solver, max_iter=100 * t.epochs, random_state=t.seed)
        model.fit(x, y)
        epochs = 1
        _log_baseline_epoch(live, model, x, y, x_val, y_val, _cross_entropy(model, x, y))
        epoch_seconds.append(time.perf_counter() - began)
    else:
        model = MLPClassifier(**mlp_options(cell))
        sign = 1.0 if t.monitor == "val_loss" else -1.0  # lower is better, after the sign
        best, best_weights, wait, stopped = float("inf"), None, 0, False
        for epoch in range(t.epochs):
            model.partial_fit(x, y, classes=classes)
            metrics = _log_baseline_epoch(live, model, x, y, x_val, y_val, float(model.loss_))
            epoch_seconds.append(time.perf_counter() - began)
            began = time.perf_counter()
            if t.patience:
                value = sign * metrics[t.monitor]
                if value < best - t.min_delta:
                    best, wait = value, 0
                    best_weights = ([w.copy() for w in model.coefs_], [b.copy() for b in model.intercepts_])
                else:
                    wait += 1
                    stopped = wait >= t.patience
                    if stopped:
                        print(f"early stop after epoch {epoch + 1}: {t.monitor} has not improved for "
                              f"{plural(t.patience, 'epoch')}", flush=True)
                        break
        if best_weights is not None and t.restore_best_weights:  # as Keras 3: stopped early or not
            model.coefs_, model.intercepts_ = best_weights
        epochs = epoch + 1
    LAPS.lap("fit")
    LAPS.move("fit", "epochs", sum(epoch_seconds))

    def predict(pixels: np.ndarray) -> np.ndarray:
        return model.predict_proba(pixels.astype(np.float32) / 255).astype(np.float32)

    return model, predict, epochs, epoch_seconds


def _cross_entropy(model, x: np.ndarray, y: np.ndarray) -> float:
    """The mean cross-entropy of `model`'s probabilities for labels `y` (a class the model
    never saw counts as probability 1e-7, as Keras clips)."""
    proba = model.predict_proba(x)
    at = np.clip(np.searchsorted(model.classes_, y), 0, len(model.classes_) - 1)
    p = np.where(model.classes_[at] == y, proba[np.arange(len(y)), at], 0.0)
    return float(-np.mean(np.log(np.clip(p, 1e-7, 1.0))))


def _log_baseline_epoch(live, model, x, y, x_val, y_val, loss: float) -> dict[str, float]:
    metrics = {"loss": loss, "accuracy": float(model.score(x, y))}
    if x_val is not None:
        metrics.update(val_loss=_cross_entropy(model, x_val, y_val), val_accuracy=float(model.score(x_val, y_val)))
    for name, value in metrics.items():
        live.log_metric(name, value)
    live.next_step()
    return metrics


def save_model(model, family: str, out_dir: Path) -> None:
    """Keras models as .keras; baselines as plain arrays (never pickle). Beside it,
    summary.txt: each layer's output shape and parameters (a baseline's arrays), and the total."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    if family in ("logreg", "mlp"):
        arrays = {"classes": model.classes_}
        if family == "logreg":
            arrays.update(coef=model.coef_, intercept=model.intercept_)
        else:
            for i, (w, b) in enumerate(zip(model.coefs_, model.intercepts_)):
                arrays[f"weights_{i}"], arrays[f"bias_{i}"] = w, b
        files.save_npz(out_dir / "model.npz", **arrays)
        weights = {name: a for name, a in arrays.items() if name != "classes"}
        lines = [f"{name}  {tuple(a.shape)}  {a.size:,}" for name, a in weights.items()]
        total = sum(a.size for a in weights.values())
        files.write_text(out_dir / SUMMARY, "\n".join([*lines, "", f"Total params: {total:,}"]) + "\n")
    else:
        from .engine.models import summary

        with files.atomic_path(out_dir / "model.keras", ".keras") as tmp:
            model.save(tmp)
            reproducible_keras_archive(tmp)
        files.write_text(out_dir / SUMMARY, summary(model)[0])


SUMMARY = "summary.txt"  # beside each saved model: its layers, shapes and parameter counts


def saved_param_count(out_dir: Path) -> int | None:
    """The parameter count the summary.txt in `out_dir` gives (None without one)."""
    path = out_dir / SUMMARY
    for line in path.read_text().splitlines() if path.exists() else []:
        if line.startswith("Total params: "):
            return int(line.removeprefix("Total params: ").replace(",", ""))
    return None


def reproducible_keras_archive(path: Path) -> None:
    """Rewrite a .keras archive without what differs from one save of the same model to the
    next: its metadata's `date_saved`, the entries' zip dates, and the config's
    `shared_object_id`s (memory addresses of the objects layers share), numbered 1, 2, ... in
    order instead. The same weights then give the same bytes, and dvc.lock stays put."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in entries:
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata.pop("date_saved", None)
                data = json.dumps(metadata).encode()
            elif info.filename == "config.json":
                data = json.dumps(_renumber_shared_objects(json.loads(data), {})).encode()
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type, fixed.external_attr = info.compress_type, info.external_attr
            archive.writestr(fixed, data)


def _renumber_shared_objects(node, numbers: dict):
    if isinstance(node, dict):
        return {key: (numbers.setdefault(value, len(numbers) + 1) if key == "shared_object_id"
                      else _renumber_shared_objects(value, numbers)) for key, value in node.items()}
    if isinstance(node, list):
        return [_renumber_shared_objects(value, numbers) for value in node]
    return node


def train_run(cell: params.Cell, run: Run, data: dict, n_classes: int, live) -> tuple:
    """Fit one run; returns (model, its results: probabilities and accuracies)."""
    # a batch of more rows than the run fits on is one batch of all of them (train_cell says so)
    batch = min(cell.train.batch_size, len(data["x_fit"]))
    run_cell = dataclasses.replace(
        cell, train=dataclasses.replace(cell.train, seed=cell.train.seed + run.replicate, batch_size=batch)
    )
    backup = BACKUP_DIR / cell.name / (run.name or "run")
    log = RunLog(live, run, backup)
    if cell.family in ("logreg", "mlp"):
        if "fresh" in data:
            print(f"train@{cell.name}: augment.mode fresh transforms the images of the Keras families only; "
                  f"{cell.family} fits on the {plural(len(data['x_fit']), 'row', grouped=True)} as they are",
                  flush=True)
        log.rewind(0)  # baselines always start from scratch
        model, predict, epochs_run, epoch_seconds = fit_baseline(run_cell, data, log)
    else:
        model, predict, epochs_run, epoch_seconds = fit_keras(run_cell, data, n_classes, log, backup)
    # a baseline predicts each set in one call: scikit-learn's numbers move in the last bit with the rows per call
    rows = None if cell.family in ("logreg", "mlp") else PREDICT_ROWS
    proba = predict_sets(predict, {name: data[f"x_{name}"] for name in ("train", "val", "test")}, rows,
                         f"predicting with {cell.name}" + (f" ({run.name})" if run.name else ""))
    train_proba, val_proba = proba["train"], proba["val"]
    LAPS.lap("predict")
    return model, {
        **log.best_epochs(),
        "val": val_proba,
        "test": proba["test"],
        "train_accuracy": float((train_proba.argmax(1) == data["y_train"]).mean()),
        "val_accuracy": float((val_proba.argmax(1) == data["y_val"]).mean()),
        "epochs": epochs_run,
        # the epochs this process trained (a resumed run's earlier epochs were timed before)
        "epoch_seconds": [round(s, 4) for s in epoch_seconds],
        "fit_rows": len(data["x_fit"]),
    }


def predict_sets(predict, sets: dict[str, np.ndarray], rows: int | None, desc: str) -> dict[str, np.ndarray]:
    """`predict` over each of `sets` (name: uint8 image rows), `rows` rows a call (None: a
    set a call), with one progress bar of the rows predicted."""
    proba = {}
    with progress(total=sum(len(x) for x in sets.values()), desc=desc, unit="row") as bar:
        for name, x in sets.items():
            step = rows or len(x) or 1
            parts = []
            for start in range(0, max(len(x), 1), step):
                parts.append(predict(x[start:start + step]))
                bar.update(len(parts[-1]))
            proba[name] = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return proba


def train_cell(cell: params.Cell) -> dict:
    """Train every run of one cell and write all of its outputs; returns its summary.

    Finished runs are kept under .train_backup/<cell>/ until the cell is done, so an
    interrupted cell resumes at its first unfinished run, from that run's last epoch.
    """
    if LAPS.seconds:  # this process trained before (another cell, one cut short, a bare fit): not this cell's
        LAPS.reset()
    LAPS.lap("params")
    from dvclive import Live

    LAPS.lap("import")
    inputs = load_inputs()
    split = inputs["split"]
    p = params.load()
    runs = plan_runs(int(split["n_folds"]), p.split.replicates)
    n_classes = len(files.read_json(paths.LABEL_MAP)["classes"])
    cell_backup = BACKUP_DIR / cell.name
    # a backup serves only the run that wrote it: the same parameters, the same contents of
    # every array the cell reads, the same training code; any other is discarded
    fingerprint = {
        "parameters": {"cell": dataclasses.asdict(cell), "split": dataclasses.asdict(p.split),
                       "augment": dataclasses.asdict(p.augment)},
        "data": arrays_digest({**inputs, "classes": np.array(files.read_json(paths.LABEL_MAP)["classes"])}),
        "code": code_version(),
    }
    stamp = cell_backup / "parameters.json"
    if cell_backup.exists():
        reason = stale_backup(stamp, fingerprint)
        if reason:
            print(f"train@{cell.name}: discarding {cell_backup} ({reason})", flush=True)
            shutil.rmtree(cell_backup)
            shutil.rmtree(paths.LIVE_DIR / cell.name, ignore_errors=True)
    resumed = cell_backup.exists()
    cell_backup.mkdir(parents=True, exist_ok=True)
    files.write_json(stamp, fingerprint)
    LAPS.lap("load")
    said_batch = False
    if resumed:
        drop_unreadable_summary(cell.name, paths.LIVE_DIR / cell.name / "metrics.json")
    live = Live(dir=str(paths.LIVE_DIR / cell.name), resume=resumed, save_dvc_exp=False, dvcyaml=False)

    val_rows = validation_rows(split)
    val_sum = np.zeros((len(val_rows), n_classes), np.float64)
    val_count = np.zeros(len(val_rows), np.int64)
    test_sum = np.zeros((len(inputs["test"]["pixels"]), n_classes), np.float64)
    run_rows, run_times, run_curves = [], [], []
    for run in runs:
        done = cell_backup / f"{run.name or 'run'}.done.npz"
        shapes = {"val": (len(split[f"val_{run.fold}"]), n_classes), "test": (len(inputs["test"]["pixels"]), n_classes)}
        result = finished_run(cell.name, done, shapes, needs=cell_backup / "model" if run == runs[0] else None)
        if result is not None:  # its curves too: DVC removed them with the stage's outputs
            RunLog(live, run, cell_backup / (run.name or "run")).rewind(result["epochs"])
        else:
            data = run_inputs(inputs, run.fold)
            if not said_batch and cell.train.batch_size > len(data["x_fit"]):
                said_batch = True
                print(f"train@{cell.name}: batch_size {cell.train.batch_size:,} is more than the "
                      f"{plural(len(data['x_fit']), 'row', grouped=True)} a run fits on; "
                      "each epoch is one batch of all of them", flush=True)
            model, result = train_run(cell, run, data, n_classes, live)
            if run == runs[0]:  # the cell's saved model is its first run's
                save_model(model, cell.family, cell_backup / "model")
                LAPS.lap("save")
            files.save_npz(done, val=result["val"], test=result["test"])
            files.write_json(done.with_suffix(".json"), {k: v for k, v in result.items() if k not in ("val", "test")})
            del data
        at = np.searchsorted(val_rows, split[f"val_{run.fold}"])
        val_sum[at] += result["val"]
        val_count[at] += 1
        test_sum += result["test"]
        run_rows.append({"run": run.name or "run", "fold": run.fold + 1, "replicate": run.replicate + 1,
                         **{k: result[k] for k in ("epochs", "fit_rows", "train_accuracy", "val_accuracy")}})
        run_log = RunLog(live, run)
        run_curves.append({name: run_log.curve(name) for name in ("val_accuracy", "val_loss")})
        run_times.append({"run": run.name or "run", "epoch_seconds": result["epoch_seconds"]})

    val_accuracies = [r["val_accuracy"] for r in run_rows]
    summary = {
        "cell": cell.name,
        "family": cell.family,
        "layers": cell.layers,
        "nodes": list(cell.nodes) if isinstance(cell.nodes, tuple) else cell.nodes,
        "param_count": saved_param_count(cell_backup / "model"),  # the saved (first run's) model's
        "epochs": max(r["epochs"] for r in run_rows),
        "runs": len(run_rows),
        "train_rows": run_rows[0]["fit_rows"],
        "train_accuracy": float(np.mean([r["train_accuracy"] for r in run_rows])),
        "val_accuracy_mean": float(np.mean(val_accuracies)),
        "val_accuracy_std": float(np.std(val_accuracies, ddof=1)) if len(run_rows) > 1 else 0.0,
        "val_accuracy_runs": val_accuracies,
        "run_details": run_rows,
        # the best epoch (counted from 1) by validation accuracy and by validation loss
        **cell_best_epochs(run_curves),
        "params": dict(vars(cell.train)),
        "net": json.loads(json.dumps(dataclasses.asdict(cell.net))),  # what it built, every key resolved
    }
    files.save_npz(
        paths.PREDICTIONS_DIR / f"{cell.name}.npz",
        val=(val_sum / np.maximum(val_count, 1)[:, None]).astype(np.float32),
        test=(test_sum / len(run_rows)).astype(np.float32),
        val_rows=val_rows,
    )
    files.write_json(paths.PREDICTIONS_DIR / f"{cell.name}.json", summary)
    shutil.rmtree(paths.MODELS_DIR / cell.name, ignore_errors=True)
    paths.MODELS_DIR.mkdir(parents=True, exist_ok=True)
    shutil.move(cell_backup / "model", paths.MODELS_DIR / cell.name)
    live.log_metric("val_accuracy_mean", summary["val_accuracy_mean"], plot=False)
    live.end()
    shutil.rmtree(cell_backup, ignore_errors=True)
    LAPS.lap("write")
    timing = write_timing(cell.name, run_rows, run_times)
    return {**summary, **timing}


def drop_unreadable_summary(cell: str, path: Path) -> bool:
    """Remove DVCLive's summary file of a resumed cell when a kill left it half written (DVCLive
    would stop on it); it is written anew after the next epoch, and the curves come from the
    backup. Returns whether it was removed."""
    if not path.exists():
        return False
    try:
        json.loads(path.read_text())
        return False
    except (ValueError, UnicodeDecodeError):
        print(f"train@{cell}: {path} was half written when the run stopped; it is written anew", flush=True)
        path.unlink()
        return True


def write_timing(cell: str, run_rows: list[dict], run_times: list[dict]) -> dict:
    """The cell's training time, the sum of its epochs' times (training pass and validation;
    no import, model building or graph tracing), under timings/, which neither git nor DVC
    tracks: it differs from machine to machine and run to run."""
    epochs = [s for r in run_times for s in r["epoch_seconds"]]
    seconds = sum(epochs)
    timed_images = sum(len(r["epoch_seconds"]) * row["fit_rows"] for r, row in zip(run_times, run_rows))
    process = LAPS.record()
    timing = {
        "train_seconds": round(seconds, 3),
        "images_per_second": round(timed_images / seconds, 1) if seconds else 0.0,
        "timed_epochs": len(epochs),
        "per_run": run_times,
        # this process from its start: each phase's seconds; fixed, all but the epochs
        "process": process,
        "fixed_seconds": round(process["total"] - process.get("epochs", 0.0), 3),
    }
    files.write_json(paths.TIMINGS_DIR / f"{cell}.json", timing)
    return timing


def stale_backup(stamp: Path, fingerprint: dict) -> str | None:
    """Why a cell's backup stamped `stamp` is of no use to a run of `fingerprint` (None: it is)."""
    try:
        saved = json.loads(stamp.read_text())
    except FileNotFoundError:
        return f"it has no {stamp.name}"
    except (OSError, ValueError) as err:
        return f"its {stamp.name} cannot be read: {type(err).__name__}"
    if not isinstance(saved, dict) or set(saved) != set(fingerprint):
        return "written by another version of the train stage"
    now = json.loads(json.dumps(fingerprint))
    other = [part for part in ("parameters", "data", "code") if saved[part] != now[part]]
    return f"written for other {' and '.join(other)}" if other else None


def finished_run(cell: str, done: Path, shapes: dict, needs: Path | None = None) -> dict | None:
    """The results a finished run left in `done` (and its .json), or None to train it again:
    none there, or one that cannot be read (said in one line, and removed)."""
    if not done.exists():
        return None
    if needs is not None and not needs.exists():
        print(f"train@{cell}: training the run of {done} again (its {needs} is missing)", flush=True)
        done.unlink()
        return None
    try:
        arrays = files.load_npz(done)
        result = {k: arrays[k] for k in ("val", "test")}
        result.update(files.read_json(done.with_suffix(".json")))
        for key, shape in shapes.items():
            if result[key].shape != shape:
                raise ValueError(f"{key} is {result[key].shape}, not {shape}")
        int(result["epochs"]), int(result["fit_rows"]), float(result["train_accuracy"]), float(result["val_accuracy"])
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as err:
        print(f"train@{cell}: discarding {done} (it cannot be read: {type(err).__name__}: "
              f"{' '.join(str(err).split())})", flush=True)
        done.unlink(missing_ok=True)
        done.with_suffix(".json").unlink(missing_ok=True)
        return None
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mnist_doe.train", description=__doc__)
    parser.add_argument("cell", nargs="?", help="name of a design cell in params.yaml doe.cells")
    parser.add_argument(
        "--check", action="store_true",
        help="check params.yaml, every cell name included, and exit; dvc.yaml runs this first, "
        "with no cell name on its command line, so a shell never reads a name params.yaml refuses",
    )
    args = parser.parse_args(argv)
    p = params.load()
    if args.check:
        return
    if args.cell is None:
        parser.error("the cell to train is required")
    if args.cell not in p.cells:
        raise params.ParamsError(
            f"no cell {args.cell!r} in doe.cells (cells: {', '.join(p.cells)})"
        )
    summary = train_cell(p.cells[args.cell])
    print(
        f"train@{summary['cell']}: {plural(summary['epochs'], 'epoch')} on {plural(summary['train_rows'], 'row')}; "
        f"{plural(summary['timed_epochs'], 'epoch')} timed: {summary['train_seconds']:.1f} s "
        f"({summary['images_per_second']:.0f} images/s)"
    )


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run_stage("train", main)
