"""The train stage on small real digits: every family, its outputs, and CPU determinism."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from mnist_doe import train
from mnist_doe.common import files, params, paths
from mnist_doe.readers.tiny import embedded_digits

from project import ROOT

pytestmark = pytest.mark.slow


def digits() -> tuple[np.ndarray, np.ndarray]:
    """350 real digits in a fixed shuffled order (the embedded file is sorted by label)."""
    x, y = embedded_digits()
    order = np.random.default_rng(0).permutation(len(y))[:350]
    return x[order], y[order]


@pytest.fixture()
def stage_dir(tmp_path, monkeypatch):
    """A project dir holding what train reads: 300 clean digits, a split, an augmented set, 50 test."""
    x, y = digits()
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    files.save_npz(paths.CLEAN_TRAIN, pixels=x[:300], y=y[:300], lines=np.arange(2, 302))
    files.save_npz(paths.CLEAN_TEST, pixels=x[300:350], y=y[300:350], lines=np.arange(2, 52))
    files.save_npz(
        paths.SPLIT, train=np.arange(0, 240), n_folds=np.array(1), val_source=np.array("train"),
        test_rows=np.arange(50), fit_0=np.arange(0, 240), val_0=np.arange(240, 300),
    )
    files.save_npz(paths.AUGMENTED_TRAIN, pixels=x[:240], y=y[:240], source=np.arange(240))
    files.write_json(paths.LABEL_MAP, {"classes": [str(i) for i in range(10)], "side": 28})
    return tmp_path


def cell(family: str, layers: int = 1, nodes: int = 16, **knobs) -> params.Cell:
    knobs = {"epochs": 2, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.003, **knobs}
    return params.Cell(
        name=f"{family}-{layers}x{nodes}", family=family, layers=layers, nodes=nodes,
        train=params.TrainParams(**knobs),
    )


@pytest.mark.parametrize("family", ["dense", "cnn", "lstm", "logreg", "mlp"])
def test_each_family_writes_model_history_and_predictions(stage_dir, family):
    c = cell(family, epochs=6, learning_rate=0.005)
    summary = train.train_cell(c)

    proba = files.load_npz(paths.PREDICTIONS_DIR / f"{c.name}.npz")
    assert proba["val"].shape == (60, 10)
    np.testing.assert_array_equal(proba["val_rows"], np.arange(240, 300))
    assert proba["test"].shape == (50, 10)
    np.testing.assert_allclose(proba["test"].sum(axis=1), 1.0, atol=1e-4)
    # six epochs on 240 real digits beat chance (0.1) clearly
    val_accuracy = float((proba["val"].argmax(1) == digits()[1][240:300]).mean())
    assert val_accuracy > 0.3, val_accuracy

    saved = json.loads((paths.PREDICTIONS_DIR / f"{c.name}.json").read_text())
    timing = json.loads((paths.TIMINGS_DIR / f"{c.name}.json").read_text())
    assert saved == {k: v for k, v in summary.items() if k not in timing} and saved["family"] == family
    # no clock in what DVC tracks: timings live under timings/ only
    assert "train_seconds" not in saved and all("seconds" not in r for r in saved["run_details"])
    # the logged training time is the sum of its epochs' times, one per epoch trained
    epoch_seconds = [s for run in timing["per_run"] for s in run["epoch_seconds"]]
    assert len(epoch_seconds) == timing["timed_epochs"] == summary["epochs"] * summary["runs"]
    assert timing["train_seconds"] == pytest.approx(sum(epoch_seconds), abs=2e-3) and timing["train_seconds"] > 0
    # the process's phases: the epochs among them, the fixed cost the rest
    process = timing["process"]
    assert process["epochs"] == pytest.approx(timing["train_seconds"], abs=5e-3)
    assert {"import", "load", "predict", "save", "write"} <= set(process)
    if family not in ("logreg", "mlp"):
        assert process["build"] > 0 and process["trace"] > 0
    assert process["total"] == pytest.approx(sum(v for k, v in process.items() if k != "total"), abs=0.02)
    assert timing["fixed_seconds"] == pytest.approx(process["total"] - process["epochs"], abs=5e-3)
    assert timing["fixed_seconds"] > 0
    model_file = "model.npz" if family in ("logreg", "mlp") else "model.keras"
    assert (paths.MODELS_DIR / c.name / model_file).stat().st_size > 0
    live = json.loads((paths.LIVE_DIR / c.name / "metrics.json").read_text())
    assert "val_accuracy" in live and "train_seconds" not in live
    assert not (train.BACKUP_DIR / c.name).exists()


@pytest.mark.parametrize("family", ["dense", "lstm"])
def test_keras_model_reloads_in_safe_mode_and_predicts_the_same(stage_dir, family):
    """The saved model is plain Keras (an LSTM trained through `recurrent` included)."""
    import keras

    c = cell(family)
    train.train_cell(c)
    model = keras.saving.load_model(paths.MODELS_DIR / c.name / "model.keras", safe_mode=True)
    test = files.load_npz(paths.CLEAN_TEST)["pixels"]
    saved = files.load_npz(paths.PREDICTIONS_DIR / f"{c.name}.npz")["test"]
    np.testing.assert_allclose(model.predict(test, verbose=0), saved, atol=1e-5)


@pytest.mark.parametrize("family", ["cnn", "lstm"])
def test_same_seed_gives_identical_predictions_on_cpu(stage_dir, family):
    model_file = paths.MODELS_DIR / f"{family}-1x16" / "model.keras"
    first = train.train_cell(cell(family))
    proba_first = files.load_npz(paths.PREDICTIONS_DIR / f"{family}-1x16.npz")
    model_first = model_file.read_bytes()
    second = train.train_cell(cell(family))
    proba_second = files.load_npz(paths.PREDICTIONS_DIR / f"{family}-1x16.npz")
    for split in ("val", "test"):
        np.testing.assert_array_equal(proba_first[split], proba_second[split])
    assert first["epochs"] == second["epochs"] == 2
    # the saved model holds no save date: the same weights, the same bytes (dvc.lock stays put)
    assert model_file.read_bytes() == model_first


def test_unknown_cell_is_refused_with_the_known_names(stage_dir, capsys):
    with pytest.raises(params.ParamsError, match="no cell 'nope' in doe.cells"):
        train.main(["nope"])


def test_kfold_with_replicates_trains_every_run_and_pools_out_of_fold(stage_dir):
    from mnist_doe import split as split_stage

    y = digits()[1]
    folds = split_stage.make_split(params.SplitParams(protocol="kfold", folds=3), y[:300], y[300:350])
    files.save_npz(paths.SPLIT, **folds)
    x = digits()[0]
    files.save_npz(paths.AUGMENTED_TRAIN, pixels=x[:300], y=y[:300], source=np.arange(300))
    raw = yaml.safe_load(open("params.yaml"))
    raw["split"].update(protocol="kfold", folds=3, replicates=2)
    with open("params.yaml", "w") as handle:
        yaml.safe_dump(raw, handle)

    summary = train.train_cell(cell("dense", epochs=2))
    assert summary["runs"] == 6 and len(summary["val_accuracy_runs"]) == 6
    assert [(r["fold"], r["replicate"]) for r in summary["run_details"]] == [
        (f, r) for f in (1, 2, 3) for r in (1, 2)
    ]
    # each fold fits on its own 200 rows, never on the rows it validates
    assert {r["fit_rows"] for r in summary["run_details"]} == {200}
    proba = files.load_npz(paths.PREDICTIONS_DIR / "dense-1x16.npz")
    np.testing.assert_array_equal(proba["val_rows"], np.arange(300))  # every row, out of fold
    assert summary["val_accuracy_std"] > 0
    for run in ("fold1-rep1", "fold3-rep2"):
        curve = paths.LIVE_DIR / "dense-1x16" / "plots" / "metrics" / run / "val_accuracy.tsv"
        assert len(curve.read_text().splitlines()) == 3  # header + 2 epochs


def test_batch_norm_and_weight_penalties_are_in_the_saved_model(stage_dir):
    import keras

    c = cell("cnn", layers=2, nodes=8, batch_norm=True, l1=1e-5, l2=1e-4)
    train.train_cell(c)
    model = keras.saving.load_model(paths.MODELS_DIR / c.name / "model.keras", safe_mode=True)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("BatchNormalization") == 3  # two conv blocks and the dense head
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    penalty = convs[0].get_config()["kernel_regularizer"]["config"]
    assert penalty == {"l1": pytest.approx(1e-5), "l2": pytest.approx(1e-4)}
    assert len(model.losses) == 3  # one penalty per regularised kernel


def test_step_schedule_halves_the_learning_rate(stage_dir):
    import keras

    c = cell("dense", epochs=4, learning_rate=0.004, schedule="step", decay_rate=0.5, decay_epochs=2)
    train.train_cell(c)
    model = keras.saving.load_model(paths.MODELS_DIR / c.name / "model.keras", safe_mode=True)
    # epochs 0-1 at 0.004, epochs 2-3 at 0.002
    assert float(model.optimizer.learning_rate) == pytest.approx(0.002)
    lr_curve = paths.LIVE_DIR / c.name / "plots" / "metrics" / "learning_rate.tsv"
    rates = [float(line.split("\t")[-1]) for line in lr_curve.read_text().splitlines()[1:]]
    assert rates == pytest.approx([0.004, 0.004, 0.002, 0.002])


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [("none", [0.1, 0.1, 0.1, 0.1]), ("step", [0.1, 0.1, 0.05, 0.05]), ("exponential", [0.1, 0.1 * 0.5**0.5, 0.05, 0.1 * 0.5**1.5])],
)
def test_learning_rate_schedules(schedule, expected):
    from mnist_doe.engine.models import learning_rate_at

    got = [learning_rate_at(e, 0.1, schedule, 0.5, 2) for e in range(4)]
    assert got == pytest.approx(expected)


def test_a_cell_after_a_bare_fit_in_the_same_process_times_only_its_own_epochs(stage_dir):
    """The process clock starts again for each cell: epochs of a fit that never reached a cell's
    end (a cut-short cell, a fit called on its own) are not counted as the next cell's."""
    c = cell("dense", epochs=3)
    x, y = digits()
    data = {"x_fit": x[:240], "y_fit": y[:240], "x_val": x[240:300], "y_val": y[240:300],
            "x_train": x[:240], "y_train": y[:240], "x_test": x[300:350]}
    from test_loop import _NoLog

    train.fit_keras(c, data, 10, _NoLog(), stage_dir / "bare")
    assert train.LAPS.seconds["epochs"] > 0
    train.train_cell(c)
    timing = json.loads((paths.TIMINGS_DIR / f"{c.name}.json").read_text())
    assert timing["process"]["epochs"] == pytest.approx(timing["train_seconds"], abs=5e-3)
    assert "startup" not in timing["process"]
