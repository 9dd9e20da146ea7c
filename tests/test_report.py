import copy

import numpy as np
import pytest
from conftest import DEFAULT_PARAMS, write_params

from mnist_doe import report
from mnist_doe.common import files, params
from mnist_doe.common.errors import DataError
from mnist_doe.common.params import ParamsError

CLASSES = ["A", "B", "K"]
Y_TEST = np.repeat([0, 1, 2], 10)  # ten images of each letter
BEST = "dense-3x16"
SECOND = "dense-3x8"
CELLS = {
    "dense-2x8": {"family": "dense", "layers": 2, "nodes": 8},
    "dense-2x16": {"family": "dense", "layers": 2, "nodes": 16},
    "dense-3x8": {"family": "dense", "layers": 3, "nodes": 8},
    "dense-3x16": {"family": "dense", "layers": 3, "nodes": 16},
}
VAL_ACCURACY = {"dense-2x8": 0.80, "dense-2x16": 0.82, "dense-3x8": 0.90, "dense-3x16": 0.93}


def cell_predictions() -> dict[str, np.ndarray]:
    """Best: B->A once, K->B three times. Second: right on two of those four, wrong on every A."""
    best = Y_TEST.copy()
    best[[10, 20, 21, 22]] = [0, 1, 1, 1]
    second = Y_TEST.copy()
    second[[21, 22]] = 1
    second[:10] = 2  # b = 10 (best alone right), c = 2 (rows 10 and 20)
    return {"dense-2x8": second, "dense-2x16": second, SECOND: second, BEST: best}


def one_hot(y: np.ndarray) -> np.ndarray:
    return np.eye(len(CLASSES), dtype=np.float32)[y]


def write_inputs(root, *, runs: bool = True, test_known: bool = True, cells=CELLS) -> None:
    write_params(root, doe={"cells": cells})
    y_train = np.tile([0, 1, 2], 6)
    y_test = Y_TEST if test_known else np.full_like(Y_TEST, -1)
    files.save_npz("data/clean/train.npz", pixels=np.zeros((18, 4), np.uint8), y=y_train, lines=np.arange(18) + 2)
    files.save_npz("data/clean/test.npz", pixels=np.zeros((30, 4), np.uint8), y=y_test, lines=np.arange(30) + 2)
    files.save_npz(
        "data/split/indices.npz", train=np.arange(12), n_folds=np.array(1), val_source=np.array("train"),
        test_rows=np.arange(30), fit_0=np.arange(12), val_0=np.arange(12, 18),
    )
    files.write_json(
        "data/clean/label_map.json", {"classes": CLASSES, "side": 2, "test_labels_known": test_known}
    )
    predictions = cell_predictions()
    doe = {"best_cell": BEST, "selected_by": "val_accuracy", "test_labels_known": test_known, "cells": {}}
    for name, spec in cells.items():
        test = predictions[name]
        # on validation the best cell is perfect and every other one is off by one class
        val = y_train[12:].copy() if name == BEST else np.roll(y_train[12:], 1)
        files.save_npz(
            f"data/predictions/{name}.npz", val=one_hot(val), test=one_hot(test), val_rows=np.arange(12, 18)
        )
        files.write_json(f"data/predictions/{name}.json", {"cell": name, **spec})
        acc = VAL_ACCURACY[name]
        doe["cells"][name] = {
            **spec, "epochs": 10, "train_accuracy": 0.95, "val_accuracy": acc,
            "val_accuracy_ci95": [acc - 0.05, min(1.0, acc + 0.05)],
        }
        if test_known:
            test_acc = float(np.mean(test == Y_TEST))
            doe["cells"][name]["test_accuracy"] = test_acc
            doe["cells"][name]["test_accuracy_ci95"] = [max(0.0, test_acc - 0.1), min(1.0, test_acc + 0.1)]
        if runs:
            doe["cells"][name]["val_accuracy_std"] = 0.01
            doe["cells"][name]["val_accuracy_runs"] = [acc - 0.01, acc, acc + 0.012]
    files.write_json("metrics/doe.json", doe)


def test_report_answers_the_client_in_original_labels(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_inputs(tmp_path)
    report.main()

    metrics = files.read_json("metrics/stats.json")
    assert metrics["scored_split"] == "test" and metrics["scored_rows"] == 30
    assert metrics["mcnemar"]["best"] == BEST and metrics["mcnemar"]["second"] == SECOND
    assert (metrics["mcnemar"]["b"], metrics["mcnemar"]["c"]) == (10, 2)
    assert metrics["mcnemar"]["p_value"] == pytest.approx(158 / 4096)
    best = metrics["cells"][BEST]
    assert best["overall"] == pytest.approx(26 / 30)
    assert (best["worst_class"], best["worst_class_accuracy"]) == ("K", pytest.approx(0.7))
    assert best["most_common_confusion"] == {"true": "K", "predicted": "B", "count": 3}
    assert best["passes_targets"] is False and best["classes_below_target"] == 1
    assert metrics["cells"][SECOND]["most_common_confusion"] == {"true": "A", "predicted": "K", "count": 10}
    assert metrics["best_per_class"]["A"] == {"precision": pytest.approx(10 / 11, abs=1e-6), "recall": 1.0,
                                              "f1": pytest.approx(20 / 21, abs=1e-6), "support": 10}
    layers = metrics["anova"]["dense"]["terms"]["layers"]
    assert layers["p_value"] < 0.01 and metrics["anova"]["dense"]["observations"] == 12

    text = (tmp_path / "metrics/report.md").read_text()
    assert "Best cell: **dense-3x16**" in text and "judged on the test set (30 images" in text
    assert "| **dense-3x16** | 3 | 16 | 10 | 0.9500 | 0.9300 ± 0.0100 | 0.8667 | 0.7667-0.9667 |" in text
    assert "![dense: validation accuracy over layers x nodes](../plots/heatmaps/dense.png)" in text
    assert (tmp_path / "plots/heatmaps/dense.png").stat().st_size > 0
    assert "Exact McNemar p-value: 0.0386, significant at 0.05" in text
    assert "| layers | 2 |" not in text and "| layers | 1 |" in text
    assert "- Worst class: K, accuracy 0.7000" in text
    assert "- Most common confusion: true K predicted as B, 3 times" in text
    assert "- Overall accuracy: 0.8667 (target 0.96: **missed**)" in text
    assert "- Classes below the per-class target 0.9: K (per-class target **missed**)" in text
    # B: 9 of 10 found, 12 predicted (3 of them K): precision 0.75, F1 0.8182; K: 7 found, none wrongly
    assert "| B | 10 | 0.9000 | 0.7500 | 0.8182 | met |" in text
    assert "| K | 10 | 0.7000 | 1.0000 | 0.8235 | **missed** |" in text
    assert "| dense-3x8 | 0.6000 | A (0.0000) | true A predicted as K, 10 times | **missed** |" in text
    assert "## Plots" not in text  # the other stages' plots are not there to link to


def test_report_without_replicates_or_test_labels(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_inputs(tmp_path, runs=False, test_known=False)
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots/learning_curves.png").write_bytes(b"png")
    report.main()

    metrics = files.read_json("metrics/stats.json")
    assert metrics["scored_split"] == "val" and metrics["scored_rows"] == 6
    assert "anova" not in metrics
    assert metrics["cells"][BEST]["overall"] == 1.0 and "most_common_confusion" not in metrics["cells"][BEST]
    text = (tmp_path / "metrics/report.md").read_text()
    assert "judged on the validation set (6 images" in text and "optimistic" in text
    assert "test acc" not in text
    assert "Not computed for dense: needs >= 2 replicate or fold accuracies" in text
    assert "- Most common confusion: none (no errors)" in text
    assert "![learning curves](../plots/learning_curves.png)" in text


def test_report_with_one_cell_skips_mcnemar(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_inputs(tmp_path, cells={BEST: CELLS[BEST]})
    report.main()
    assert "mcnemar" not in files.read_json("metrics/stats.json")
    text = (tmp_path / "metrics/report.md").read_text()
    assert "no second best to compare with" in text
    assert "Not computed for dense: needs >= 2 levels of layers and of nodes (has 1 x 1)" in text


def test_report_refuses_stale_inputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_inputs(tmp_path)
    write_params(tmp_path, doe={"cells": {**CELLS, "dense-4x4": {"family": "dense", "layers": 4, "nodes": 4}}})
    with pytest.raises(DataError, match=r"metrics/doe.json: no cell 'dense-4x4'; run `dvc repro evaluate`"):
        report.main()

    write_params(tmp_path, doe={"cells": CELLS})
    files.save_npz(f"data/predictions/{BEST}.npz", train=one_hot(Y_TEST), val=one_hot(Y_TEST), test=one_hot(Y_TEST[:5]))
    with pytest.raises(DataError, match=r"dense-3x16.npz: 'test' holds 5 rows, the test set 30"):
        report.main()


def test_report_targets_are_checked():
    raw = copy.deepcopy(DEFAULT_PARAMS)
    assert params.parse(raw).report == params.ReportParams(target_overall=0.96, target_per_class=0.90)
    raw["report"] = {"target_overall": 1.5}
    with pytest.raises(ParamsError, match=r"'report.target_overall' must be in \[0, 1\], got 1.5"):
        params.parse(raw)
    raw["report"] = {"target_per_class": "high"}
    with pytest.raises(ParamsError, match="'report.target_per_class' must be a number, got 'high'"):
        params.parse(raw)


def test_the_report_follows_an_optimizer_by_learning_rate_design(tmp_path, monkeypatch):
    """Cells of one depth and width that differ in optimizer and learning rate are not pooled as
    replicates of a layers x nodes cell: the report analyses the knobs that vary."""
    monkeypatch.chdir(tmp_path)
    grid = dict(zip(CELLS, [("sgd", 0.1), ("sgd", 0.01), ("adam", 0.1), ("adam", 0.01)]))
    cells = {name: {"family": "dense", "layers": 2, "nodes": 8, "optimizer": opt, "learning_rate": lr}
             for name, (opt, lr) in grid.items()}
    write_inputs(tmp_path, cells=cells)
    report.main()

    metrics = files.read_json("metrics/stats.json")
    assert set(metrics["factors"]) == {"optimizer", "learning_rate"}
    adam = {r["value"]: r for r in metrics["factors"]["optimizer"]}["adam"]
    assert adam["cells"] == 2 and adam["mean_val_accuracy"] == pytest.approx((0.90 + 0.93) / 2)
    assert set(metrics["anova"]["terms"]) == {"optimizer", "learning_rate"}
    assert metrics["anova"]["observations"] == 12  # 4 cells x 3 runs, none pooled
    text = (tmp_path / "metrics/report.md").read_text()
    assert "Which factors matter?" in text and "Do depth and width matter?" not in text
    assert "![optimizer x learning rate](../plots/factors/optimizer_x_learning_rate.png)" in text
    assert not (tmp_path / "plots/heatmaps/dense.png").exists()  # one depth, one width: no heatmap
    for name in ("optimizer", "learning_rate", "optimizer_x_learning_rate"):
        assert (tmp_path / f"plots/factors/{name}.png").stat().st_size > 0


def test_widths_per_layer_are_factors_not_a_heatmap(tmp_path, monkeypatch):
    """Cells that give a width per layer (seed 002's 256-512, 512-256, 1024-512-256) are analysed
    by their widths as a factor; no layers x nodes grid is drawn from lists."""
    monkeypatch.chdir(tmp_path)
    widths = dict(zip(CELLS, [[256, 512], [512, 256], [1024, 512, 256], [128]]))
    cells = {name: {"family": "dense", "layers": len(w), "nodes": w} for name, w in widths.items()}
    write_inputs(tmp_path, cells=cells)
    report.main()
    metrics = files.read_json("metrics/stats.json")
    assert {r["value"] for r in metrics["factors"]["nodes"]} == {"256-512", "512-256", "1024-512-256", 128}
    assert not (tmp_path / "plots/heatmaps/dense.png").exists()
    assert "## The design's factors" in (tmp_path / "metrics/report.md").read_text()
