"""The refit for the submission end to end: real `dvc repro` on tiny digits (Fashion-style files), the best cell
trained again on every labelled row, and what submit and report make of it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from project import TINY_CELLS, dvc, set_params
from test_pipeline import fashion_run

pytestmark = pytest.mark.slow

N_TRAIN, N_TEST = 400, 100  # the shared Fashion-style run's (tests/test_pipeline.py)


def read_json(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def refitted(tmp_path_factory):
    """The shared run of two cells (two epochs each, 400 labelled digits with one static copy
    per recipe), then refit.cell best, repro'd: only the refit's stages and those after run."""
    project, _ = fashion_run(tmp_path_factory, "refit")
    set_params(project, {"refit": {"cell": "best"}})
    first = dvc(project, "repro")
    return project, first


def test_the_submission_is_the_best_cell_trained_on_every_labelled_row(refitted):
    project, first = refitted
    assert "Running stage 'refit-plan'" in first.stdout and "Running stage 'refit'" in first.stdout
    assert "Running stage 'train@" not in first.stdout  # the cells' runs are the shared run's
    doe = read_json(project / "metrics/doe.json")
    record = read_json(project / "models/refit/refit.json")
    split = np.load(project / "data/split/indices.npz")
    best = doe["best_cell"]
    assert record["cell"] == best and record["family"] == TINY_CELLS[best]["family"]
    # every labelled row: the fit rows and the validation rows of the split, each with 3 copies
    assert record["rows"] == len(split["fit_0"]) + len(split["val_0"]) == N_TRAIN
    assert (record["fit_rows"], record["validation_rows"]) == (len(split["fit_0"]), len(split["val_0"]))
    assert record["images_per_epoch"] == 4 * record["rows"]
    # for its best epoch by val_loss (the cell's monitor) in its validation run, no early stopping
    assert record["epochs"] == doe["cells"][best]["min_val_loss_epoch"] == len(record["history"])
    assert all(set(epoch) == {"loss", "accuracy", "learning_rate"} for epoch in record["history"])
    assert (project / "models/refit/model.keras").exists()
    assert "Total params: " in (project / "models/refit/summary.txt").read_text()

    proba = np.load(project / "models/refit/predictions.npz")["test"]
    assert proba.shape == (N_TEST, 10)
    classes = read_json(project / "data/clean/label_map.json")["classes"]
    refit_csv = pd.read_csv(project / "submissions/refit.csv", dtype=str)
    best_csv = pd.read_csv(project / "submissions/best.csv", dtype=str)
    assert best_csv.equals(refit_csv)
    assert list(best_csv.columns) == ["ImageId", "Label"]
    assert best_csv["ImageId"].tolist() == [str(i) for i in range(1, N_TEST + 1)]
    assert best_csv["Label"].tolist() == [classes[k] for k in proba.argmax(1)]
    # the per-cell submissions and the ensemble stay what the cells predict
    for cell in TINY_CELLS:
        own = np.load(project / f"data/predictions/{cell}.npz")["test"].argmax(1)
        assert pd.read_csv(project / f"submissions/{cell}.csv")["Label"].tolist() == [int(classes[k]) for k in own]
    mean = np.mean([np.load(project / f"data/predictions/{c}.npz")["test"] for c in TINY_CELLS], axis=0)
    assert pd.read_csv(project / "submissions/ensemble.csv")["Label"].tolist() == mean.argmax(1).tolist()

    # the saved model is the one that made them
    import keras

    model = keras.saving.load_model(project / "models/refit/model.keras", safe_mode=True)
    test = np.load(project / "data/clean/test.npz")["pixels"]
    np.testing.assert_allclose(model.predict(test, verbose=0), proba, atol=1e-5)

    report = (project / "metrics/report.md").read_text()
    answers = pd.read_csv(project / "data/external/test.csv")["label"].to_numpy()
    accuracy = float((proba.argmax(1) == answers).mean())
    assert (f"| `best.csv` | a copy of refit.csv: the refit of {best} (the best cell) | 400 labelled rows: "
            f"{len(split['fit_0'])} fit + {len(split['val_0'])} validation (1,600 images an epoch with augmented "
            f"copies) | {record['epochs']} | {accuracy:.4f} |") in report
    assert f"| `{best}.csv` | cell {best} | {len(split['fit_0'])} fit rows (1,280 images an epoch" in report
    stats = read_json(project / "metrics/stats.json")
    assert stats["refit"] == {"cell": best, "rows": N_TRAIN, "epochs": record["epochs"],
                              "test_accuracy": pytest.approx(accuracy, abs=1e-6)}


def test_the_refit_is_reproducible(refitted):
    project, _ = refitted
    before = np.load(project / "models/refit/predictions.npz")["test"]
    record = read_json(project / "models/refit/refit.json")
    again = dvc(project, "repro", "--force", "--single-item", "refit")
    assert "Running stage 'refit'" in again.stdout
    np.testing.assert_array_equal(np.load(project / "models/refit/predictions.npz")["test"], before)
    assert read_json(project / "models/refit/refit.json") == record


def test_a_new_cell_does_not_retrain_the_refit_of_another(refitted):
    project, _ = refitted
    best = read_json(project / "metrics/doe.json")["best_cell"]
    before = (project / "models/refit/predictions.npz").read_bytes()
    # the cell by its name: the same plan as `best` gave, so nothing to retrain for it
    set_params(project, {"refit": {"cell": best}})
    assert "Stage 'refit' didn't change, skipping" in dvc(project, "repro", "refit").stdout
    cells = {**TINY_CELLS, "dense-1x8": {"family": "dense", "layers": 1, "nodes": 8, "epochs": 1}}
    set_params(project, {"doe": {"cells": cells}})
    out = dvc(project, "repro").stdout
    assert "Running stage 'train@dense-1x8'" in out and "Running stage 'refit-plan'" in out
    assert "Stage 'refit' didn't change, skipping" in out
    assert (project / "models/refit/predictions.npz").read_bytes() == before
    assert read_json(project / "models/refit/refit.json")["cell"] == best
    assert pd.read_csv(project / "submissions/best.csv").equals(pd.read_csv(project / "submissions/refit.csv"))


def test_with_the_refit_off_the_best_cell_is_submitted_as_before(refitted):
    project, _ = refitted
    ensemble = (project / "submissions/ensemble.csv").read_bytes()
    set_params(project, {"refit": {"cell": "none"}})
    out = dvc(project, "repro").stdout
    assert "Running stage 'train@" not in out
    assert read_json(project / "models/refit/refit.json")["cell"] is None
    assert sorted(p.name for p in (project / "models/refit").iterdir()) == ["refit.json"]
    assert not (project / "submissions/refit.csv").exists()
    best = read_json(project / "metrics/doe.json")["best_cell"]
    assert (project / "submissions/best.csv").read_bytes() == (project / f"submissions/{best}.csv").read_bytes()
    assert (project / "submissions/ensemble.csv").read_bytes() == ensemble
    report = (project / "metrics/report.md").read_text()
    assert f"| `best.csv` | a copy of {best}.csv: cell {best} |" in report and "refit.csv" not in report
    assert "refit" not in read_json(project / "metrics/stats.json")
