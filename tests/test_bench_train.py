"""The training bench's statistics: per-repeat accuracy differences and pooling of reports."""

from __future__ import annotations

import importlib.util
import json
import statistics
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_train", REPO / "bench" / "bench_train.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

CELL = "dense-5x200"
N_TRAIN = 1_200


def run(accuracy: float, epoch_seconds: float) -> dict:
    return {"epoch_seconds": [2 * epoch_seconds, epoch_seconds, epoch_seconds], "fit_seconds": 4 * epoch_seconds,
            "test_accuracy": accuracy, "val_accuracy": accuracy, "load_average": 1.0}


def report(path: Path, seed: int, accuracies: dict[str, list[float]], seconds: dict[str, float],
           cells: tuple[str, ...] = (CELL,)) -> Path:
    runs = {cell: {way: [run(a, seconds[way]) for a in accs] for way, accs in accuracies.items()} for cell in cells}
    data = {
        "setup": {"data": "test images", "train_images": N_TRAIN, "val_images": 100, "test_images": 100,
                  "epochs": 3, "repeats": len(accuracies["seed"]), "seed": seed, "timed": "epochs 2..3"},
        "machine": {"cpu": "test cpu", "cores": 2, "gpus": 0, "python": "3", "numpy": "2",
                    "tensorflow": "2", "keras": "3", "vector": "AVX2", "bfloat16": False},
        "cells": bench.summarize(runs, N_TRAIN),
        "bench_seconds": 10.0,
    }
    path.write_text(json.dumps(data))
    return path


SECONDS = {"seed": 0.3, "ours": 0.1, "mixed": 0.1}


def test_summary_gives_both_standard_errors(tmp_path):
    seed = [0.70, 0.72, 0.68, 0.74]
    ours = [0.705, 0.722, 0.684, 0.741]  # each a little above its repeat's seed way
    summary = json.loads(report(tmp_path / "a.json", 42, {"seed": seed, "ours": ours, "mixed": seed}, SECONDS).read_text())
    row = summary["cells"][CELL]["ours"]
    differences = [100 * (o - s) for o, s in zip(ours, seed)]
    assert row["accuracy_points"] == pytest.approx(statistics.mean(differences), abs=0.01)
    assert row["accuracy_points_paired_se"] == pytest.approx(statistics.stdev(differences) / 2, abs=0.01)
    # the runs move together, so the paired error is far below the error of the two means
    assert row["accuracy_points_paired_se"] < row["accuracy_points_se"] / 10
    assert row["ratio"] == pytest.approx(3.0)
    assert "(± 0.09)" in bench.markdown(summary)


def test_pool_joins_the_runs_of_reports(tmp_path):
    a = report(tmp_path / "a.json", 42, {"seed": [0.70, 0.72], "ours": [0.71, 0.73], "mixed": [0.70, 0.72]}, SECONDS)
    b = report(tmp_path / "b.json", 100, {"seed": [0.69, 0.75], "ours": [0.68, 0.74], "mixed": [0.69, 0.75]},
               {"seed": 0.3, "ours": 0.15, "mixed": 0.1})
    pooled = bench.pool([a, b])
    assert pooled["setup"]["seeds"] == {CELL: [42, 43, 100, 101]}
    ours = pooled["cells"][CELL]["ours"]
    assert ours["test_accuracy_runs"] == [0.71, 0.73, 0.68, 0.74]
    assert ours["accuracy_points"] == pytest.approx(0.0, abs=1e-9)  # +1, +1, -1, -1 points
    assert ours["accuracy_points_paired_se"] == pytest.approx(statistics.stdev([1, 1, -1, -1]) / 2, abs=0.01)
    assert ours["images_per_second_runs"] == pytest.approx([12_000, 12_000, 8_000, 8_000])
    assert f"{CELL} (batch 64, sgd 0.01, 4 runs)" in bench.markdown(pooled)


def test_pool_gives_each_cell_the_runs_of_the_reports_that_have_it(tmp_path):
    accs = {"seed": [0.7, 0.8], "ours": [0.7, 0.8], "mixed": [0.7, 0.8]}
    a = report(tmp_path / "a.json", 42, accs, SECONDS)  # the dense cell alone
    b = report(tmp_path / "b.json", 100, accs, SECONDS, cells=(CELL, "cnn-2x28"))
    pooled = bench.pool([a, b])
    assert pooled["setup"]["seeds"] == {CELL: [42, 43, 100, 101], "cnn-2x28": [100, 101]}
    assert len(pooled["cells"][CELL]["ours"]["test_accuracy_runs"]) == 4
    assert len(pooled["cells"]["cnn-2x28"]["ours"]["test_accuracy_runs"]) == 2
    # a pooled report pools on: its seeds are known per cell
    c = report(tmp_path / "c.json", 42, accs, SECONDS, cells=("cnn-2x28",))
    again = tmp_path / "pooled.json"
    again.write_text(json.dumps(pooled))
    assert bench.pool([again, c])["setup"]["seeds"]["cnn-2x28"] == [42, 43, 100, 101]
    with pytest.raises(ValueError, match="dense-5x200 seeds 42-43 overlap"):
        bench.pool([again, a])


def test_pool_refuses_overlapping_seeds_and_other_setups(tmp_path):
    accs = {"seed": [0.7, 0.7], "ours": [0.7, 0.7], "mixed": [0.7, 0.7]}
    a = report(tmp_path / "a.json", 42, accs, SECONDS)
    b = report(tmp_path / "b.json", 43, accs, SECONDS)
    with pytest.raises(ValueError, match="seeds 43-44 overlap"):
        bench.pool([a, b])
    c = json.loads(report(tmp_path / "c.json", 100, accs, SECONDS).read_text())
    c["setup"]["epochs"] = 5
    (tmp_path / "c.json").write_text(json.dumps(c))
    with pytest.raises(ValueError, match="setup epochs is 5"):
        bench.pool([a, tmp_path / "c.json"])
