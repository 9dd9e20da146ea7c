"""evaluate stage: per-cell metrics and the DOE summary across all cells (no model is loaded)."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import accuracy_score  # noqa: E402

from .common import files, paths, results  # noqa: E402
from .common.errors import run_stage  # noqa: E402

LEARNING_CURVES = Path("plots/learning_curves.png")
TIME_VS_ACCURACY = Path("plots/time_vs_accuracy.png")


def cell_metrics(summary: dict, proba: dict[str, np.ndarray], truth: results.Truth) -> dict:
    """The seed-style row of one cell: design, time, and accuracy on each set.

    With several runs (folds, replicates), train and validation accuracy are the mean over
    runs (with their sd and the per-run values); test accuracy is that of the runs' mean
    probabilities, the same prediction the submission holds.
    """
    row = {
        "family": summary["family"],
        "layers": summary["layers"],
        "nodes": summary["nodes"],
        "epochs": summary["epochs"],
        "runs": summary["runs"],
        "train_seconds": summary["train_seconds"],
        "train_accuracy": round(summary["train_accuracy"], 6),
        "val_accuracy": round(summary["val_accuracy_mean"], 6),
    }
    if summary["runs"] > 1:
        row["val_accuracy_std"] = round(summary["val_accuracy_std"], 6)
        row["val_accuracy_runs"] = [round(a, 6) for a in summary["val_accuracy_runs"]]
        row["val_accuracy_pooled"] = round(float(accuracy_score(truth.y_val, proba["val"].argmax(1))), 6)
    known = truth.y_test >= 0
    if truth.test_labels_known:
        row["test_accuracy"] = round(
            float(accuracy_score(truth.y_test[known], proba["test"].argmax(1)[known])), 6
        )
    return row


def summarise(cells: dict[str, dict], truth: results.Truth) -> dict:
    best = max(cells, key=lambda name: (cells[name]["val_accuracy"], -cells[name]["train_seconds"]))
    return {
        "best_cell": best,
        "selected_by": "val_accuracy",
        "test_labels_known": truth.test_labels_known,
        "cells": cells,
    }


def markdown_table(doe: dict) -> str:
    has_test = doe["test_labels_known"]
    head = ["cell", "family", "layers", "nodes", "epochs", "time (s)", "train acc", "val acc"]
    head += ["test acc"] if has_test else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ranked = sorted(doe["cells"].items(), key=lambda kv: -kv[1]["val_accuracy"])
    for name, m in ranked:
        row = [
            f"**{name}**" if name == doe["best_cell"] else name,
            m["family"], str(m["layers"]), str(m["nodes"]), str(m["epochs"]),
            f"{m['train_seconds']:.1f}", f"{m['train_accuracy']:.4f}",
            f"{m['val_accuracy']:.4f}" + (f" ± {m['val_accuracy_std']:.4f}" if "val_accuracy_std" in m else ""),
        ]
        row += [f"{m['test_accuracy']:.4f}"] if has_test else []
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _curve(cell: str, metric: str) -> tuple[list[int], list[float]]:
    path = paths.LIVE_DIR / cell / "plots" / "metrics" / f"{metric}.tsv"
    if not path.exists():
        return [], []
    with path.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [int(r["step"]) + 1 for r in rows], [float(r[metric]) for r in rows]


def plot_learning_curves(cells: list[str]) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for cell in cells:
        for ax, metric in zip(axes, ("accuracy", "val_accuracy")):
            steps, values = _curve(cell, metric)
            ax.plot(steps, values, marker=".", label=cell)
    for ax, title in zip(axes, ("training accuracy (augmented set)", "validation accuracy")):
        ax.set(title=title, xlabel="epoch", ylabel="accuracy")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    files.save_png(fig, LEARNING_CURVES)


def plot_time_vs_accuracy(cells: dict[str, dict]) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, m in cells.items():
        ax.scatter(m["train_seconds"], m["val_accuracy"])
        ax.annotate(name, (m["train_seconds"], m["val_accuracy"]), fontsize=8)
    ax.set(xlabel="training time (s)", ylabel="validation accuracy", title="time versus accuracy")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    files.save_png(fig, TIME_VS_ACCURACY)


def main() -> None:
    truth = results.load_truth()
    cells = {}
    for name in results.declared_cells():
        summary, proba = results.load_predictions(name)
        cells[name] = cell_metrics(summary, proba, truth)
    doe = summarise(cells, truth)
    files.write_json(paths.DOE_METRICS, doe)
    files.write_text(paths.DOE_TABLE, markdown_table(doe))
    plot_learning_curves(list(cells))
    plot_time_vs_accuracy(cells)
    print(markdown_table(doe), end="")


if __name__ == "__main__":
    run_stage("evaluate", main)
