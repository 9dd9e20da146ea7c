"""evaluate stage: per-cell metrics, the DOE summary across all cells and the learning curves
of every cell on one chart per metric (no model is loaded).

Writes what git tracks and `dvc metrics diff` compares, none of it machine-dependent:
`metrics/summary.json` (the DVC metric: the best cell, then each cell's validation and test
accuracy), `metrics/doe.json` and `metrics/doe.md` (every cell's row with 95% intervals),
`plots/curves/{accuracy,loss}.csv` (for `dvc plots show`) and `plots/learning_curves.png`.
Timings, which differ from machine to machine and run to run, go to `timings/` (not tracked).
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import accuracy_score, log_loss  # noqa: E402

from .common import files, params, paths, results, stats  # noqa: E402
from .common.errors import run_stage  # noqa: E402

LEARNING_CURVES = Path("plots/learning_curves.png")
TIME_VS_ACCURACY = paths.TIMINGS_DIR / "time_vs_accuracy.png"
CURVE_METRICS = {"accuracy": "accuracy", "loss": "loss"}  # curve file: its training-set metric


def _interval(low_high: tuple[float, float]) -> list[float]:
    return [round(low_high[0], 6), round(low_high[1], 6)]


def cell_metrics(summary: dict, proba: dict[str, np.ndarray], truth: results.Truth) -> dict:
    """The seed-style row of one cell: design, and accuracy on each set with its 95% interval.

    With several runs (folds, replicates), train and validation accuracy are the mean over
    runs (with their sd, the per-run values and a t interval); test accuracy is that of the
    runs' mean probabilities, the same prediction the submission holds (Wilson interval).
    """
    val_pred = proba["val"].argmax(1)
    row = {
        "family": summary["family"],
        "layers": summary["layers"],
        "nodes": summary["nodes"],
        "params": summary.get("param_count"),  # the trained model's parameter count
        "epochs": summary["epochs"],
        "runs": summary["runs"],
        "train_accuracy": round(summary["train_accuracy"], 6),
        "val_accuracy": round(summary["val_accuracy_mean"], 6),
    }
    if summary["runs"] > 1:
        row["val_accuracy_std"] = round(summary["val_accuracy_std"], 6)
        row["val_accuracy_runs"] = [round(a, 6) for a in summary["val_accuracy_runs"]]
        row["val_accuracy_pooled"] = round(float(accuracy_score(truth.y_val, val_pred)), 6)
        row["val_accuracy_ci95"] = _interval(stats.mean_interval(summary["val_accuracy_runs"]))
    else:
        hits = int(np.sum(val_pred == truth.y_val))
        row["val_accuracy_ci95"] = _interval(stats.wilson_interval(hits, len(truth.y_val)))
    # the best epoch by validation accuracy and by validation loss (the train stage's summary)
    for key in ("best_val_accuracy", "best_val_accuracy_epoch", "min_val_loss", "min_val_loss_epoch"):
        if summary.get(key) is not None:
            row[key] = int(summary[key]) if key.endswith("_epoch") else round(float(summary[key]), 6)
    known = truth.y_test >= 0
    if truth.test_labels_known:
        hits = int(np.sum(proba["test"].argmax(1)[known] == truth.y_test[known]))
        row["test_accuracy"] = round(hits / int(known.sum()), 6)
        row["test_accuracy_ci95"] = _interval(stats.wilson_interval(hits, int(known.sum())))
        test = proba["test"][known].astype(np.float64)
        # a diverged run (a learning rate of 1, say) predicts NaN: its loss is unknown, not an error
        if np.isfinite(test).all():
            test = np.clip(test, 1e-7, 1.0)
            row["test_loss"] = round(float(log_loss(truth.y_test[known], test / test.sum(1, keepdims=True),
                                                    labels=range(len(truth.classes)))), 6)
        else:
            row["test_loss"] = None
    return row


def ensemble_metrics(members: list[str], probas: dict, truth: results.Truth) -> dict:
    """The ensemble scored as a cell: the mean of its members' probabilities. Its validation
    accuracy is optimistic: the members were chosen on that set."""
    proba = results.ensemble_proba(probas, members)
    summary = {"family": results.ENSEMBLE, "layers": 0, "nodes": 0, "epochs": 0, "runs": 1,
               "train_accuracy": float("nan"),
               "val_accuracy_mean": float(accuracy_score(truth.y_val, proba["val"].argmax(1)))}
    row = cell_metrics(summary, proba, truth)
    for key in ("family", "layers", "nodes", "epochs", "runs", "train_accuracy"):
        row.pop(key)
    return {"members": members, **row}


def best_cell(cells: dict[str, dict]) -> str:
    """The highest validation accuracy; a tie goes to the name first in alphabetical order."""
    return results.rank({name: m["val_accuracy"] for name, m in cells.items()})[0]


def summarise(cells: dict[str, dict], truth: results.Truth, ensemble: dict | None = None) -> dict:
    doe = {
        "best_cell": best_cell(cells),
        "selected_by": "val_accuracy",
        "test_labels_known": truth.test_labels_known,
        "cells": cells,
    }
    if ensemble:
        doe["ensemble"] = ensemble
    return doe


def headline(doe: dict) -> dict:
    """What `dvc metrics show` and `dvc exp show` print first: the best cell and its accuracies
    (with the 95% interval of the one that judges it), then each cell's, each once."""
    best = doe["cells"][doe["best_cell"]]
    out = {"best_cell": doe["best_cell"], "best_val_accuracy": best["val_accuracy"]}
    if doe["test_labels_known"]:
        out["best_test_accuracy"] = best["test_accuracy"]
        out["best_test_low"], out["best_test_high"] = best["test_accuracy_ci95"]
    else:
        out["best_val_low"], out["best_val_high"] = best["val_accuracy_ci95"]
    if "ensemble" in doe:
        out["ensemble_val_accuracy"] = doe["ensemble"]["val_accuracy"]
        if doe["test_labels_known"]:
            out["ensemble_test_accuracy"] = doe["ensemble"]["test_accuracy"]
    out["cells"] = {
        name: {k: m[k] for k in ("val_accuracy", "test_accuracy") if k in m} for name, m in doe["cells"].items()
    }
    return out


def _loss(value: float | None) -> str:
    return "diverged" if value is None else f"{value:.4f}"


def markdown_table(doe: dict) -> str:
    has_test = doe["test_labels_known"]
    head = ["cell", "family", "layers", "nodes", "params", "epochs", "train acc", "val acc", "val 95% CI"]
    head += ["test acc", "test 95% CI", "test loss"] if has_test else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ranked = sorted(doe["cells"].items(), key=lambda kv: (-kv[1]["val_accuracy"], kv[0]))
    for name, m in ranked:
        row = [
            f"**{name}**" if name == doe["best_cell"] else name,
            m["family"], str(m["layers"]), str(m["nodes"]),
            f"{m['params']:,}" if m.get("params") is not None else "", str(m["epochs"]),
            f"{m['train_accuracy']:.4f}",
            f"{m['val_accuracy']:.4f}" + (f" ± {m['val_accuracy_std']:.4f}" if "val_accuracy_std" in m else ""),
            "{:.4f}-{:.4f}".format(*m["val_accuracy_ci95"]),
        ]
        row += [f"{m['test_accuracy']:.4f}", "{:.4f}-{:.4f}".format(*m["test_accuracy_ci95"]),
                _loss(m["test_loss"])] if has_test else []
        lines.append("| " + " | ".join(row) + " |")
    if "ensemble" in doe:
        e = doe["ensemble"]
        row = [f"ensemble of {', '.join(e['members'])}", "", "", "", "", "",
               f"{e['val_accuracy']:.4f} (optimistic: its members were chosen on it)",
               "{:.4f}-{:.4f}".format(*e["val_accuracy_ci95"])]
        row += [f"{e['test_accuracy']:.4f}", "{:.4f}-{:.4f}".format(*e["test_accuracy_ci95"]),
                _loss(e["test_loss"])] if has_test else []
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _run_folders(cell: str) -> list[tuple[str, Path]]:
    """(line name, folder of its DVCLive curves) for each run of a cell: runs of a cell trained
    several times (folds, replicates) have a subfolder each."""
    root = paths.LIVE_DIR / cell / "plots" / "metrics"
    runs = sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []
    return [(f"{cell} {run.name}", run) for run in runs] or [(cell, root)]


def _curve(folder: Path, metric: str) -> list[tuple[int, float]]:
    path = folder / f"{metric}.tsv"
    if not path.exists():
        return []
    with path.open() as handle:
        return [(int(r["step"]) + 1, float(r[metric])) for r in csv.DictReader(handle, delimiter="\t")]


def curve_table(cells: list[str], metric: str) -> pd.DataFrame:
    """One row per (cell, set, epoch): `metric` on the training set and on the validation set,
    epochs counted from 1."""
    rows = []
    for cell in cells:
        for line, folder in _run_folders(cell):
            for split, name in (("training", metric), ("validation", f"val_{metric}")):
                rows += [{"cell": line, "set": split, "epoch": e, metric: v} for e, v in _curve(folder, name)]
    return pd.DataFrame(rows, columns=["cell", "set", "epoch", metric])


def write_curves(cells: list[str]) -> dict[str, pd.DataFrame]:
    tables = {}
    for metric in CURVE_METRICS:
        tables[metric] = table = curve_table(cells, metric)
        with files.atomic_path(paths.CURVES_DIR / f"{metric}.csv") as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")
    return tables


def plot_learning_curves(tables: dict[str, pd.DataFrame]) -> None:
    """Accuracy and loss per epoch, every cell a colour, validation solid, training dashed."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = {}
    for ax, (metric, table) in zip(axes, tables.items()):
        for (cell, split), rows in table.groupby(["cell", "set"], sort=False):
            colour = colours.setdefault(cell, f"C{len(colours) % 10}")
            ax.plot(rows["epoch"], rows[metric], color=colour, linestyle="-" if split == "validation" else "--",
                    marker="." if split == "validation" else None, label=cell if split == "validation" else None)
        ax.set(title=f"{metric.capitalize()} per epoch (validation solid, training dashed)", xlabel="epoch",
               ylabel=metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    files.save_png(fig, LEARNING_CURVES)


def cell_timing(cell: str) -> dict | None:
    """The machine-dependent timing train@cell left in timings/ (None when there is none)."""
    path = paths.TIMINGS_DIR / f"{cell}.json"
    if path.exists():
        return files.read_json(path)
    return None


def write_timings(cells: dict[str, dict], timings: dict[str, dict]) -> None:
    """Training time against validation accuracy, and the times, under timings/ (not tracked)."""
    if not timings:
        return
    files.write_json(paths.TIMINGS_DIR / "doe.json", timings)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, t in timings.items():
        ax.scatter(t["train_seconds"], cells[name]["val_accuracy"])
        ax.annotate(name, (t["train_seconds"], cells[name]["val_accuracy"]), fontsize=8)
    ax.set(xlabel="training time (s): the epochs and their validation", ylabel="validation accuracy",
           title="Training time versus validation accuracy")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    files.save_png(fig, TIME_VS_ACCURACY)


def main() -> None:
    truth = results.load_truth()
    cells, timings, summaries, probas = {}, {}, {}, {}
    for name in results.declared_cells():
        summaries[name], probas[name] = results.load_predictions(name)
        cells[name] = cell_metrics(summaries[name], probas[name], truth)
        timing = cell_timing(name)
        if timing:
            timings[name] = timing
    members = results.ensemble_members(summaries, params.load().ensemble)
    doe = summarise(cells, truth, ensemble_metrics(members, probas, truth) if members else None)
    files.write_json(paths.SUMMARY_METRICS, headline(doe))
    files.write_json(paths.DOE_METRICS, doe)
    files.write_text(paths.DOE_TABLE, markdown_table(doe))
    plot_learning_curves(write_curves(list(cells)))
    write_timings(cells, timings)
    print(markdown_table(doe), end="")


if __name__ == "__main__":
    run_stage("evaluate", main)
