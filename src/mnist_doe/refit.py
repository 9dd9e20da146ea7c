"""refit stages: one cell trained again on every labelled row, and that model submitted.

After the cells are compared on their validation rows, `refit.cell` (params.yaml) names one of
them (`best`: the cell evaluate names best_cell in metrics/doe.json; `none`: no refit) to train
once more on its fit rows and its validation rows together, as scikit-learn's GridSearchCV
refits its best estimator on all the data. Two DVC stages:

- `refit-plan` (`python -m mnist_doe.refit --plan`) decides, training nothing: the cell, its
  knobs as it trained, and the epochs (`refit.epochs: best`, the cell's best epoch by its
  `monitor` in its validation run, of the mean curve over its folds or replicates; or a
  number). It reads metrics/doe.json, so it runs again whenever a cell changes, but the refit
  retrains only when what it writes, data/refit_plan.json, changes.
- `refit` (`python -m mnist_doe.refit`) trains that cell with its family, network, knobs and
  seed for those epochs, without early stopping or a plateau rule, since no rows are left to
  watch (a cell that reduced its rate on a plateau trains at the rates its validation run
  trained at, epoch by epoch, the median over its runs), on every labelled row: the split's fit
  rows and validation rows (with `split.protocol: test-only`, the validation rows drawn from
  the test file; its scored test rows are never trained on). These rows are augmented as the
  augment stage augments training rows: `augment.mode: static` makes `augment.copies` copies per
  recipe of each of them, with the augment stage's code and seed (the validation rows get
  copies too), and `fresh` transforms them anew every epoch. It writes models/refit/: the model
  and summary.txt as a cell's, `predictions.npz` (`test`: the test file's class probabilities)
  and `refit.json` (the cell, the rows and epochs it trained on, each epoch's loss and rate).
  With the refit off, refit.json alone, saying so, and nothing is trained.

The submit stage then writes submissions/refit.csv from it, and submissions/best.csv is that.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np

from . import augment, train
from .common import files, params, paths
from .common.errors import DataError, run_stage
from .common.words import plural

BASELINES = ("logreg", "mlp")
BACKUP = train.BACKUP_DIR / "refit"  # no cell has this name (params.RESERVED_CELL_NAMES)
OFF = "refit.cell is none: no refit; submissions/best.csv is the best cell's"


def knobs(cell: params.Cell) -> dict:
    """The cell as it trains, every knob resolved, as JSON: what the plan records of it."""
    return json.loads(json.dumps(dataclasses.asdict(cell)))


def choose_epochs(cell: params.Cell, row: dict, setting) -> tuple[int, str]:
    """The refit's epochs and why: `setting` when it is a number; for `best`, the cell's best
    epoch by its monitor, from its row of metrics/doe.json (a logreg, which fits to convergence,
    keeps its own limit)."""
    if setting != params.REFIT_BEST:
        return int(setting), f"refit.epochs: {setting}"
    if cell.family == "logreg":
        return cell.train.epochs, (f"a logreg fits to convergence: the cell's own limit of "
                                   f"{100 * cell.train.epochs} iterations")
    monitor = cell.train.monitor
    key = "min_val_loss_epoch" if monitor == "val_loss" else "best_val_accuracy_epoch"
    if row.get(key) is None:
        return int(row["epochs"]), f"the {row['epochs']} epochs the cell trained (no finite {monitor} to choose by)"
    runs = int(row.get("runs", 1))
    curve = f"the mean validation curve of its {runs} runs" if runs > 1 else "its validation run"
    return int(row[key]), f"the cell's best epoch by {monitor} in {curve}: {row[key]} of the {row['epochs']} it trained"


def recorded_rates(cell: str, epochs: int) -> list[float]:
    """The learning rate each of `epochs` epochs of a cell's validation run trained at (its
    DVCLive learning_rate curve; the median over its runs), the last carried on beyond them."""
    root = paths.LIVE_DIR / cell / "plots" / "metrics"
    folders = sorted(p for p in root.glob("*") if p.is_dir()) or [root]
    curves = [c for c in (train.read_curve(f / "learning_rate.tsv", "learning_rate") for f in folders) if c]
    if not curves:
        raise DataError(f"{root}: no learning_rate curve of {cell}'s runs; run `dvc repro train@{cell}`")
    per_epoch = [float(np.median([c[e] for c in curves if len(c) > e])) for e in range(max(map(len, curves)))]
    return [per_epoch[min(e, len(per_epoch) - 1)] for e in range(epochs)]


def epochs_words(chosen: dict) -> str:
    """How long the refit trains, in words (a logreg's epochs are its limit of iterations)."""
    if chosen["knobs"]["family"] == "logreg":
        return chosen["epochs_rule"]
    return f"{plural(chosen['epochs'], 'epoch')}: {chosen['epochs_rule']}"


def plan(p: params.Params) -> dict:
    """What the refit trains (see the module docstring); {"cell": None, ...} when it is off."""
    if p.refit.cell == params.REFIT_OFF:
        return {"cell": None, "note": OFF}
    if not paths.DOE_METRICS.exists():
        raise DataError(f"{paths.DOE_METRICS}: missing; run `dvc repro evaluate` first")
    doe = files.read_json(paths.DOE_METRICS)
    name = doe["best_cell"] if p.refit.cell == params.REFIT_BEST else p.refit.cell
    if name not in p.cells or name not in doe["cells"]:
        raise DataError(f"{paths.DOE_METRICS}: no row of the declared cell {name!r}; run `dvc repro evaluate`")
    cell = p.cells[name]
    epochs, rule = choose_epochs(cell, doe["cells"][name], p.refit.epochs)
    # what the refit's model depends on, and nothing else: the same plan of another run leaves it as it is
    out = {"cell": name, "epochs": epochs, "epochs_rule": rule, "knobs": knobs(cell)}
    if cell.train.plateau_patience and cell.family not in BASELINES:
        out["learning_rates"] = recorded_rates(name, epochs)
    return out


def labelled_data(settings: params.AugmentParams) -> tuple[dict, dict]:
    """Every labelled row the split holds (fit and validation rows), augmented as `settings`
    say, with the test file's images; and how many rows of each kind."""
    clean, test, split = (files.load_npz(path) for path in (paths.CLEAN_TRAIN, paths.CLEAN_TEST, paths.SPLIT))
    fit, val = split["fit_0"], split["val_0"]  # disjoint, and together every labelled row, in any protocol
    from_test = str(split["val_source"]) == "test"
    rows = fit if from_test else np.union1d(fit, val)
    x, y = clean["pixels"][rows], clean["y"][rows]
    if from_test:
        x, y = np.concatenate([x, test["pixels"][val]]), np.concatenate([y, test["y"][val]])
    y = y.astype(np.int64)
    if settings.mode == "fresh":
        data = {"x_fit": x, "y_fit": y, "fresh": augment.fresh_settings(settings)}
    else:
        pixels, labels = augment.augment_training_set(x, y, settings)
        data = {"x_fit": pixels, "y_fit": labels.astype(np.int64)}
    data.update(x_train=x, y_train=y, x_test=test["pixels"])
    counts = {"rows": len(y), "fit_rows": len(fit), "validation_rows": len(val),
              "validation_from": "test file" if from_test else "train file", "images_per_epoch": len(data["x_fit"])}
    return data, counts


class History:
    """The refit's log: each epoch's loss, accuracy and learning rate (no validation rows, so no
    val_*), written beside its backup after every epoch, so a resumed refit keeps its earlier
    epochs. Takes the place of the train stage's DVCLive log for the training code."""

    def __init__(self, path: Path):
        self.path, self.epochs, self.current = path, [], {}

    def log_metric(self, name: str, value: float) -> None:
        self.current[name] = float(value)

    def next_step(self) -> None:
        self.epochs.append(self.current)
        self.current = {}
        files.write_json(self.path, self.epochs)

    def rewind(self, epochs: int) -> None:
        self.epochs = (files.read_json(self.path) if self.path.exists() else [])[:epochs]
        self.current = {}


def refit(p: params.Params) -> dict:
    """Train what data/refit_plan.json says and write models/refit/; returns its record."""
    if not paths.REFIT_PLAN.exists():
        raise DataError(f"{paths.REFIT_PLAN}: missing; run `dvc repro refit-plan` first")
    chosen = files.read_json(paths.REFIT_PLAN)
    if chosen["cell"] is None:
        shutil.rmtree(paths.REFIT_DIR, ignore_errors=True)
        shutil.rmtree(BACKUP, ignore_errors=True)
        record = {"cell": None, "note": chosen["note"]}
        files.write_json(paths.REFIT_RECORD, record)
        return record
    name = chosen["cell"]
    if name not in p.cells or knobs(p.cells[name]) != chosen["knobs"]:
        raise DataError(f"{paths.REFIT_PLAN}: written for other knobs of {name!r}; run `dvc repro refit-plan`")
    cell = p.cells[name]
    data, counts = labelled_data(p.augment)
    t = dataclasses.replace(cell.train, epochs=chosen["epochs"], patience=0, plateau_patience=0,
                            batch_size=min(cell.train.batch_size, len(data["x_fit"])))
    refit_cell = dataclasses.replace(cell, train=t)
    # a backup of an interrupted refit serves the same plan only
    stamp = BACKUP / "plan.json"
    if BACKUP.exists() and (not stamp.exists() or files.read_json(stamp) != chosen):
        shutil.rmtree(BACKUP)
    BACKUP.mkdir(parents=True, exist_ok=True)
    files.write_json(stamp, chosen)
    log = History(BACKUP / "history.json")
    print(f"refit: {name} on {counts['rows']:,} labelled rows ({counts['fit_rows']:,} fit + "
          f"{counts['validation_rows']:,} validation), {counts['images_per_epoch']:,} images an epoch, "
          f"{epochs_words(chosen)}", flush=True)
    if cell.family in BASELINES:
        if "fresh" in data:
            print(f"refit: augment.mode fresh transforms the images of the Keras families only; {cell.family} fits "
                  f"on the {len(data['x_fit']):,} rows as they are", flush=True)
        log.rewind(0)
        model, predict, epochs_run, seconds = train.fit_baseline(refit_cell, data, log)
    else:
        n_classes = len(files.read_json(paths.LABEL_MAP)["classes"])
        rates = chosen.get("learning_rates")
        schedule = (lambda epoch, current: rates[min(epoch, len(rates) - 1)]) if rates else None
        model, predict, epochs_run, seconds = train.fit_keras(refit_cell, data, n_classes, log, BACKUP, schedule)

    staged = BACKUP / "model"
    train.save_model(model, cell.family, staged)
    files.save_npz(staged / paths.REFIT_PREDICTIONS.name, test=predict(data["x_test"]).astype(np.float32))
    record = {
        "cell": name,
        "family": cell.family,
        **counts,
        "augment": p.augment.mode,
        "epochs": epochs_run,
        "epochs_rule": chosen["epochs_rule"],
        "seed": t.seed,
        "param_count": train.saved_param_count(staged),
        # on the labelled rows as they are, not their augmented copies
        "train_accuracy": float((predict(data["x_train"]).argmax(1) == data["y_train"]).mean()),
        "history": log.epochs,
    }
    files.write_json(staged / paths.REFIT_RECORD.name, record)
    shutil.rmtree(paths.REFIT_DIR, ignore_errors=True)
    paths.REFIT_DIR.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(staged, paths.REFIT_DIR)
    shutil.rmtree(BACKUP, ignore_errors=True)
    # machine-dependent, so beside the cells' timings, tracked by neither git nor DVC
    files.write_json(paths.TIMINGS_DIR / "refit.json", {"train_seconds": round(sum(seconds), 3),
                                                        "epoch_seconds": [round(s, 4) for s in seconds]})
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mnist_doe.refit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", action="store_true",
                        help=f"decide what the refit trains and write {paths.REFIT_PLAN}; train nothing")
    args = parser.parse_args(argv)
    p = params.load()
    if args.plan:
        chosen = plan(p)
        files.write_json(paths.REFIT_PLAN, chosen)
        if chosen["cell"] is None:
            print(f"refit-plan: {OFF}")
        else:
            print(f"refit-plan: {chosen['cell']} (refit.cell: {p.refit.cell}), {epochs_words(chosen)}")
        return
    record = refit(p)
    if record["cell"] is None:
        print(f"refit: {OFF}")
    else:
        print(f"refit: {record['cell']} trained {plural(record['epochs'], 'epoch')} on "
              f"{plural(record['rows'], 'row', grouped=True)}; "
              f"written to {paths.REFIT_DIR}/")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run_stage("refit", main)
