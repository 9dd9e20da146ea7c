"""The refit stages on small real digits, in process: a bad refit.cell in one line, the rows and
epochs a refit trains on, the baselines' refits, a plateau cell's learning rates and a killed
refit resumed."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import write_params

from mnist_doe import augment, evaluate, refit, split, train
from mnist_doe.common import files, params, paths
from mnist_doe.common.errors import DataError
from mnist_doe.readers.tiny import embedded_digits

from project import env, kill_after, run

def test_an_unknown_refit_cell_stops_the_stage_in_one_line_exit_2(tmp_path):
    write_params(tmp_path, refit={"cell": "dense-9x9"})
    done = run(tmp_path, "python", "-m", "mnist_doe.refit", "--plan", check=False)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "refit: error: params.yaml: 'refit.cell' is 'dense-9x9'; choose none (no refit), best (the best cell) or a "
        "cell of doe.cells (dense-2x100, dense-2x200, dense-3x100, dense-3x200, dense-5x100, dense-5x200)"
    ]


@pytest.fixture()
def digits_dir(tmp_path, monkeypatch):
    """A project dir with 300 clean labelled digits and 50 labelled test digits (real ones)."""
    x, y = embedded_digits()
    order = np.random.default_rng(0).permutation(len(y))[:350]
    x, y = x[order], y[order]
    monkeypatch.chdir(tmp_path)
    files.save_npz(paths.CLEAN_TRAIN, pixels=x[:300], y=y[:300], lines=np.arange(2, 302))
    files.save_npz(paths.CLEAN_TEST, pixels=x[300:], y=y[300:], lines=np.arange(2, 52))
    files.write_json(paths.LABEL_MAP, {"classes": [str(i) for i in range(10)], "side": 28})
    return tmp_path


def compare_and_refit(cells: dict, **sections) -> dict:
    """split, augment, train every cell, evaluate, then the refit's plan and the refit itself;
    returns the refit's record."""
    write_params(doe={"cells": cells, "ensemble": 0}, **sections)
    split.main()
    augment.main()
    for cell in params.load().cells.values():
        train.train_cell(cell)
    evaluate.main()
    return plan_and_refit()


def plan_and_refit() -> dict:
    refit.main(["--plan"])
    refit.main([])
    return files.read_json(paths.REFIT_RECORD)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.slow
def test_the_baselines_refit_on_every_row_of_the_folds(digits_dir):
    mlp = {"family": "mlp", "nodes": [32], "optimizer": "adam", "learning_rate": 0.003, "epochs": 6, "patience": 2}
    cells = {"logreg": {"family": "logreg", "layers": 1, "nodes": 1}, "mlp-32": mlp}
    record = compare_and_refit(cells, split={"protocol": "kfold", "folds": 2}, augment={"copies": 1},
                               refit={"cell": "mlp-32"})
    folds = files.load_npz(paths.SPLIT)
    doe = files.read_json(paths.DOE_METRICS)
    assert record["rows"] == len(folds["fit_0"]) + len(folds["val_0"]) == 300
    assert record["images_per_epoch"] == 4 * 300  # the original rows and a copy per recipe of each
    # the best epoch of the two folds' mean validation curve; no early stopping now
    assert record["epochs"] == doe["cells"]["mlp-32"]["min_val_loss_epoch"] == len(record["history"])
    assert "mean validation curve of its 2 runs" in record["epochs_rule"]
    test = files.load_npz(paths.CLEAN_TEST)["pixels"].astype(np.float32) / 255
    model = files.load_npz(paths.REFIT_DIR / "model.npz")
    hidden = np.maximum(test @ model["weights_0"] + model["bias_0"], 0)
    proba = files.load_npz(paths.REFIT_PREDICTIONS)["test"]
    np.testing.assert_allclose(softmax(hidden @ model["weights_1"] + model["bias_1"]), proba, atol=1e-5)

    write_params(doe={"cells": cells, "ensemble": 0}, split={"protocol": "kfold", "folds": 2},
                 augment={"copies": 1}, refit={"cell": "logreg"})
    record = plan_and_refit()
    assert (record["cell"], record["rows"], record["epochs"]) == ("logreg", 300, 1)
    assert "limit of 1000 iterations" in record["epochs_rule"]  # 100 x train.epochs
    model = files.load_npz(paths.REFIT_DIR / "model.npz")
    np.testing.assert_allclose(softmax(test @ model["coef"].T + model["intercept"]),
                               files.load_npz(paths.REFIT_PREDICTIONS)["test"], atol=1e-5)


@pytest.mark.slow
def test_with_validation_drawn_from_the_test_file_those_rows_are_trained_on_too(digits_dir):
    cells = {"logreg": {"family": "logreg", "layers": 1, "nodes": 1}}
    sections = {"data": {"train_csv": "train.csv", "test_csv": "test.csv"},  # what ingest read (params check them)
                "split": {"protocol": "test-only", "val_fraction": 0.5}, "augment": {"copies": 0}}
    record = compare_and_refit(cells, **sections, refit={"cell": "best"})
    rows = files.load_npz(paths.SPLIT)
    assert len(rows["val_0"]) == 25 and len(rows["test_rows"]) == 25
    assert (record["rows"], record["fit_rows"], record["validation_rows"]) == (325, 300, 25)
    assert record["validation_from"] == "test file" and record["images_per_epoch"] == 325
    assert files.load_npz(paths.REFIT_PREDICTIONS)["test"].shape == (50, 10)

    # a plan written for other knobs of its cell is not trained
    write_params(doe={"cells": {"logreg": {**cells["logreg"], "C": 0.1}}, "ensemble": 0}, **sections,
                 refit={"cell": "best"})
    with pytest.raises(DataError, match=r"^data/refit_plan.json: written for other knobs of 'logreg'; run `dvc repro "
                                        r"refit-plan`$"):
        refit.main([])


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["fast", "keras"])
def test_a_plateau_cell_refits_at_the_rates_its_validation_run_trained_at(digits_dir, engine):
    # no epoch improves val_loss by 10: after the second epoch, the rate is cut to a tenth
    cell = {"family": "dense", "layers": 1, "nodes": 16, "epochs": 3, "optimizer": "adam", "learning_rate": 0.003,
            "plateau_patience": 1, "plateau_min_delta": 10.0, "engine": engine}
    record = compare_and_refit({"dense-1x16": cell}, augment={"copies": 0}, refit={"cell": "best", "epochs": 3})
    validated = train.read_curve(paths.LIVE_DIR / "dense-1x16/plots/metrics/learning_rate.tsv", "learning_rate")
    assert validated == pytest.approx([0.003, 0.003, 0.0003])
    assert [epoch["learning_rate"] for epoch in record["history"]] == pytest.approx(validated)
    assert record["rows"] == 300 and record["epochs"] == 3


@pytest.mark.slow
@pytest.mark.long  # killed and resumed, three processes of its own: make test-all, CI
def test_a_killed_refit_resumes_and_ends_as_an_uninterrupted_one(digits_dir):
    epochs = 40
    cell = {"family": "dense", "layers": 2, "nodes": 64, "epochs": 1, "optimizer": "adam", "learning_rate": 0.003}
    write_params(doe={"cells": {"dense-2x64": cell}, "ensemble": 0}, augment={"copies": 1},
                 refit={"cell": "best", "epochs": epochs})
    split.main()
    augment.main()
    train.train_cell(params.load().cells["dense-2x64"])
    evaluate.main()
    refit.main(["--plan"])

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "mnist_doe.refit"], env=env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def logged() -> int:
        history = refit.BACKUP / "history.json"
        return len(files.read_json(history)) if history.exists() else 0

    whole = start()
    assert whole.wait(timeout=600) == 0, whole.stdout.read()
    uninterrupted = files.load_npz(paths.REFIT_PREDICTIONS)["test"]
    record = files.read_json(paths.REFIT_RECORD)

    shutil.rmtree(paths.REFIT_DIR)  # as DVC removes a stage's outputs before it runs the stage
    done = kill_after(start(), logged, 2)
    assert 2 <= done < epochs and not paths.REFIT_DIR.exists()
    again = start()
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    trained = [line for line in out.splitlines() if line.startswith("Epoch ")]
    assert trained[0] != f"Epoch 1/{epochs}" and trained[-1] == f"Epoch {epochs}/{epochs}"
    np.testing.assert_array_equal(files.load_npz(paths.REFIT_PREDICTIONS)["test"], uninterrupted)
    assert files.read_json(paths.REFIT_RECORD) == record  # its history too, one entry per epoch
    assert not refit.BACKUP.exists()
