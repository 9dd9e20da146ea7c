"""A train cell killed mid-run and rerun by real `dvc repro` (which removes the stage's outputs,
the learning curves among them, before it reruns it): it resumes only the run its backup was
written for, and its learning curves hold every epoch once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest

from mnist_doe.readers.tiny import embedded_digits, write_pair

from project import BIN, dvc, env, make_project, tiny_overrides, untimed

# end-to-end studies of minutes: make test-all and CI run them, make test leaves them out
pytestmark = [pytest.mark.slow, pytest.mark.long]

CELL = "dense-2x64"
EPOCHS = 30


@pytest.fixture()
def project(tmp_path):
    """A tiny project, its stages up to augment run: 240 rows fit (960 with augmentation)."""
    overrides = tiny_overrides("fashion", epochs=EPOCHS, cells={CELL: {"family": "dense", "layers": 2, "nodes": 64}})
    overrides["train"]["batch_size"] = 8
    project = make_project(tmp_path / "project", overrides)
    write_pair(project / "data/external", n_train=300, n_test=60, style="fashion")
    dvc(project, "repro", "augment")
    return project


def curves(project) -> dict[str, list[str]]:
    folder = project / "dvclive" / CELL / "plots" / "metrics"
    return {tsv.name: tsv.read_text().splitlines() for tsv in sorted(folder.glob("*.tsv"))}


def kill_mid_run(project) -> None:
    """Start `dvc repro train@CELL`, kill it and its stage (SIGKILL) after two epochs are backed up."""
    proc = subprocess.Popen([str(BIN / "dvc"), "repro", f"train@{CELL}"], cwd=project, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    tsv = project / "dvclive" / CELL / "plots" / "metrics" / "val_accuracy.tsv"
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if tsv.exists() and len(tsv.read_text().splitlines()) >= 4:  # header + 3 epochs: 2 backed up
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the cell finished (or failed) before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (project / ".train_backup" / CELL / "run" / "state.npz").exists()
    assert not (project / "data/predictions" / f"{CELL}.npz").exists()


def outputs(project) -> dict:
    predictions = np.load(project / "data/predictions" / f"{CELL}.npz")
    return {
        "summary": untimed(json.loads((project / "data/predictions" / f"{CELL}.json").read_text())),
        "live": untimed(json.loads((project / "dvclive" / CELL / "metrics.json").read_text())),
        "val": predictions["val"], "test": predictions["test"],
        "curves": curves(project),
    }


def assert_same(a: dict, b: dict) -> None:
    # the same code, parameters and data on one machine: the same numbers, bit for bit
    assert a["summary"] == b["summary"] and a["live"] == b["live"]
    np.testing.assert_array_equal(a["val"], b["val"])
    np.testing.assert_array_equal(a["test"], b["test"])
    assert a["curves"] == b["curves"]


def test_a_resumed_cell_keeps_every_epoch_of_its_learning_curves(project):
    kill_mid_run(project)
    rerun = dvc(project, "repro", f"train@{CELL}")
    epochs_run = [line for line in rerun.stdout.splitlines() if line.startswith("Epoch ")]
    assert epochs_run[0] != f"Epoch 1/{EPOCHS}" and epochs_run[-1] == f"Epoch {EPOCHS}/{EPOCHS}", epochs_run
    assert "discarding" not in rerun.stdout
    resumed = outputs(project)
    assert set(resumed["curves"]) == {"accuracy.tsv", "learning_rate.tsv", "loss.tsv", "val_accuracy.tsv", "val_loss.tsv"}
    for name, lines in resumed["curves"].items():
        assert lines[0] == f"step\t{name[:-4]}"
        assert [row.split("\t")[0] for row in lines[1:]] == [str(e) for e in range(EPOCHS)], name

    dvc(project, "repro", "--force", f"train@{CELL}")  # the same cell, uninterrupted
    assert_same(resumed, outputs(project))


def other_images_of_the_same_labels(csv) -> None:
    """Rewrite a Kaggle CSV with other real digits of the same labels, row for row."""
    frame = pd.read_csv(csv)
    x, y = embedded_digits()
    used = {row.tobytes() for row in frame.iloc[:, 1:].to_numpy(np.uint8)}
    pool = {label: [i for i in np.flatnonzero(y == label)[::-1] if x[i].tobytes() not in used] for label in range(10)}
    frame.iloc[:, 1:] = np.stack([x[pool[label].pop()] for label in frame["label"]])
    frame.to_csv(csv, index=False)


def test_a_backup_of_other_data_is_discarded_and_the_cell_trains_afresh(project):
    kill_mid_run(project)
    for name in ("train.csv", "test.csv"):
        other_images_of_the_same_labels(project / "data/external" / name)

    rerun = dvc(project, "repro", f"train@{CELL}")  # ingest to augment rerun first, on the new files
    said = [line for line in rerun.stdout.splitlines() if "discarding" in line]
    assert said == [f"train@{CELL}: discarding .train_backup/{CELL} (written for other data)"], rerun.stdout
    epochs_run = [line for line in rerun.stdout.splitlines() if line.startswith("Epoch ")]
    assert epochs_run == [f"Epoch {e}/{EPOCHS}" for e in range(1, EPOCHS + 1)]
    after_kill = outputs(project)

    dvc(project, "repro", "--force", f"train@{CELL}")  # a clean run on the new data
    assert_same(after_kill, outputs(project))
