"""`train.engine: keras`, model.fit with Keras' callbacks, as the reference for the fast loop:
the same learning on the same batches, the same accuracy within run-to-run noise for every
Keras family, and a killed run that resumes to the uninterrupted run's weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mnist_doe import train
from mnist_doe.common import files, params, paths
from mnist_doe.readers.tiny import embedded_digits

from project import env, kill_after
from test_loop import _NoLog
from test_train import cell, stage_dir  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

# The spread of validation accuracy (400 digits) after 5 epochs on 600 digits, batch 32, Adam
# at 0.003, dropout 0.2, one layer of 16: measured over seeds 0-7 on a 2-core AMD EPYC; per
# seed the two engines share the initial weights and batches and differ by their dropout masks
# (and summation order). sd of one engine's accuracy over seeds / sd of the per-seed
# difference fast - keras / mean difference:
#   dense  0.014 (fast), 0.017 (keras) / 0.017 / +0.006
#   cnn    0.016, 0.011 / 0.014 / +0.001
#   lstm   0.032, 0.036 / 0.030 / +0.009
# The test compares the mean over SEEDS seeds, whose paired difference has a standard error of
# sd / sqrt(SEEDS); it allows 4 of them.
DIFFERENCE_SD = {"dense": 0.017, "cnn": 0.014, "lstm": 0.030}
SEEDS = 3


def digit_data() -> dict[str, np.ndarray]:
    """600 real digits to fit on and 400 others to validate on, drawn in a fixed order."""
    x, y = embedded_digits()
    order = np.random.default_rng(0).permutation(len(y))
    fit, val = order[:600], order[600:1000]
    return {"x_fit": x[fit], "y_fit": y[fit], "x_val": x[val], "y_val": y[val],
            "x_train": x[fit], "y_train": y[fit], "x_test": x[val]}


def train_once(family: str, engine: str, seed: int, backup: Path, data: dict, **knobs) -> np.ndarray:
    t = params.TrainParams(**{"epochs": 5, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.003,
                              "seed": seed, "engine": engine, **knobs})
    c = params.Cell(name=f"{family}-1x16", family=family, layers=1, nodes=16, train=t)
    _, predict, epochs, _ = train.fit_keras(c, data, 10, _NoLog(), backup)
    assert epochs == t.epochs
    return predict(data["x_val"])


@pytest.mark.parametrize("family", ["dense", pytest.param("cnn", marks=pytest.mark.long),
                                    pytest.param("lstm", marks=pytest.mark.long)])
def test_each_family_learns_as_well_with_model_fit(tmp_path, family, capsys):
    data = digit_data()
    accuracy = {}
    for engine in ("fast", "keras"):
        accuracy[engine] = [
            float((train_once(family, engine, seed, tmp_path / f"{engine}{seed}", data).argmax(1) == data["y_val"]).mean())
            for seed in range(SEEDS)
        ]
        assert f"train: engine {engine} (" in capsys.readouterr().out
    fast, keras = np.mean(accuracy["fast"]), np.mean(accuracy["keras"])
    assert min(accuracy["fast"] + accuracy["keras"]) > 0.3  # both learned (chance: 0.1)
    tolerance = 4 * DIFFERENCE_SD[family] / np.sqrt(SEEDS)
    assert abs(fast - keras) < tolerance, accuracy


def test_without_dropout_model_fit_learns_what_the_fast_loop_learns(tmp_path):
    """No dropout: the same initial weights, batches and optimizer steps, so the two engines
    end with the same predictions up to float summation order."""
    data = digit_data()
    fast = train_once("dense", "fast", 1, tmp_path / "fast", data, dropout=0.0, optimizer="sgd", learning_rate=0.05)
    keras = train_once("dense", "keras", 1, tmp_path / "keras", data, dropout=0.0, optimizer="sgd", learning_rate=0.05)
    np.testing.assert_allclose(keras, fast, atol=1e-4)


def keras_run(data: dict, epochs: int, backup: Path, logged: list, seed_offset: int = 0, **knobs):
    """The Keras engine on a dense model built as a new process builds it (global seed
    `seed_offset` away from the run's: the backup, not the seed, must make the run equal)."""
    import keras

    from mnist_doe.engine import keras_fit
    from mnist_doe.engine.models import BUILDERS, Regularisation, optimizer

    t = params.TrainParams(epochs=epochs, batch_size=32, optimizer="adam", learning_rate=0.003, seed=4,
                           engine="keras", **knobs)
    keras.backend.clear_session()
    keras.utils.set_random_seed(t.seed + seed_offset)
    model = BUILDERS["dense"](784, 10, 1, 16, Regularisation(dropout=t.dropout))
    if seed_offset:
        for variable in model.trainable_variables:  # other initial weights: only the backup can fix them
            variable.assign(variable * 0.5)
    model.compile(optimizer=optimizer("adam", t.learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    done, _ = keras_fit.fit(model, (data["x_fit"], data["y_fit"]), (data["x_val"], data["y_val"]), t,
                            backup=backup, fingerprint="f", log=logged.append)
    return done, model


KNOBS = {"dropout": 0.3, "patience": 3, "monitor": "val_accuracy", "plateau_patience": 1,
         "plateau_min_delta": 0.05, "plateau_factor": 0.5, "schedule": "multiply", "decay_rate": 0.9}


def test_a_resumed_model_fit_ends_as_an_uninterrupted_one(tmp_path):
    """BackupAndRestore with the state it does not keep (dropout seed states, early stopping's
    and the plateau rule's counts) beside it: 2 epochs, then a fresh model resumed to 6, equal
    to 6 in one go, weights, curve and stop."""
    data = digit_data()
    whole_log, first_log, resumed_log = [], [], []
    whole_epochs, whole = keras_run(data, 6, tmp_path / "a", whole_log, **KNOBS)
    keras_run(data, 2, tmp_path / "b", first_log, **KNOBS)
    resumed_epochs, resumed = keras_run(data, 6, tmp_path / "b", resumed_log, seed_offset=7, **KNOBS)
    assert resumed_epochs == whole_epochs and len(resumed_log) == whole_epochs - 2
    assert first_log + resumed_log == whole_log
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("moment", ["while writing the weights", "before the metadata", "before the state"])
def test_a_kill_while_the_backup_is_written_resumes_from_the_epoch_before(tmp_path, moment, capsys):
    """BackupAndRestore overwrites its files in place, then the state follows: killed at any of
    these moments of epoch 3's backup, the run resumes from epoch 2's files (their .bkp copies)
    and ends as an uninterrupted run."""
    from mnist_doe.engine import keras_fit

    data = digit_data()
    knobs = {"dropout": 0.3}
    _, whole = keras_run(data, 4, tmp_path / "whole", [], **knobs)
    folder = tmp_path / "killed"
    keras_run(data, 2, folder, [], **knobs)  # epochs 1-2 backed up
    weights, metadata = folder / keras_fit.KERAS_WEIGHTS, folder / keras_fit.KERAS_METADATA
    # what BackupAndRestore(double_checkpoint=True) does first when it backs up epoch 3
    (folder / (keras_fit.KERAS_WEIGHTS + keras_fit.PREVIOUS)).write_bytes(weights.read_bytes())
    (folder / (keras_fit.KERAS_METADATA + keras_fit.PREVIOUS)).write_bytes(metadata.read_bytes())
    if moment == "while writing the weights":
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        other = tmp_path / "other"  # weights of another epoch 3
        keras_run(data, 3, other, [], **knobs)
        weights.write_bytes((other / keras_fit.KERAS_WEIGHTS).read_bytes())
        if moment == "before the state":
            metadata.write_text('{"epoch": 3, "batch": 0}')
    logged = []
    done, resumed = keras_run(data, 4, folder, logged, seed_offset=7, **knobs)
    assert done == 4 and len(logged) == 2 and "discarding" not in capsys.readouterr().out
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_backup_of_another_run_is_discarded(tmp_path, capsys):
    from mnist_doe.engine import keras_fit

    data = digit_data()
    keras_run(data, 1, tmp_path / "b", [])
    state = files.load_npz(tmp_path / "b" / keras_fit.STATE)
    saved = json.loads(str(state["state"]))
    assert keras_fit.read_backup(tmp_path / "b", "g") is None
    assert "written for other parameters" in capsys.readouterr().out and not (tmp_path / "b").exists()
    (tmp_path / "c").mkdir()
    files.save_npz(tmp_path / "c" / keras_fit.STATE, state=np.array(json.dumps({**saved, "epochs_done": 3})))
    (tmp_path / "c" / keras_fit.KERAS_METADATA).write_text('{"epoch": 2, "batch": 0}')
    assert keras_fit.read_backup(tmp_path / "c", "f") is None
    assert "no weights of BackupAndRestore's are those of its state's epoch 3" in capsys.readouterr().out


CELL = "dense-2x64"
EPOCHS = 30


def _curve_rows() -> int:
    tsv = paths.LIVE_DIR / CELL / "plots" / "metrics" / "val_accuracy.tsv"
    return max(0, len(tsv.read_text().splitlines()) - 1) if tsv.exists() else 0


@pytest.mark.long  # an end-to-end study of minutes: make test-all, CI
def test_a_killed_keras_engine_cell_resumes_to_the_uninterrupted_result(stage_dir):  # noqa: F811
    """SIGKILL during training, then the stage again: it resumes after its last backed-up epoch
    and ends with the predictions of a run never interrupted."""
    p = yaml.safe_load(open("params.yaml"))
    p["doe"]["cells"] = {CELL: {"family": "dense", "layers": 2, "nodes": 64}}
    p["train"].update(epochs=EPOCHS, batch_size=8, engine="keras", patience=50, plateau_patience=3)
    with open("params.yaml", "w") as handle:
        yaml.safe_dump(p, handle)
    command = [sys.executable, "-m", "mnist_doe.train", CELL]

    whole = subprocess.run(command, env=env(), capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stdout[-2000:] + whole.stderr[-2000:]
    assert "train: engine keras (model.fit with Keras' callbacks)" in whole.stdout
    expected = files.load_npz(paths.PREDICTIONS_DIR / f"{CELL}.npz")
    uninterrupted = {k: expected[k] for k in ("val", "test")}
    for path in (paths.PREDICTIONS_DIR, paths.LIVE_DIR, paths.MODELS_DIR):
        subprocess.run(["rm", "-rf", str(path)], check=True)

    proc = subprocess.Popen(command, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    kill_after(proc, _curve_rows, 3)
    done_before = _curve_rows()
    assert 3 <= done_before < EPOCHS

    rerun = subprocess.run(command, env=env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    epochs_run = [line for line in rerun.stdout.splitlines() if line.startswith("Epoch ") and "/" in line]
    assert epochs_run[0] != f"Epoch 1/{EPOCHS}" and epochs_run[-1] == f"Epoch {EPOCHS}/{EPOCHS}"
    assert _curve_rows() == EPOCHS
    got = files.load_npz(paths.PREDICTIONS_DIR / f"{CELL}.npz")
    for key, value in uninterrupted.items():
        np.testing.assert_array_equal(got[key], value)
    assert not (train.BACKUP_DIR / CELL).exists()
