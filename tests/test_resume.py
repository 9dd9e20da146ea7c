"""An interrupted train cell resumes from its last finished epoch when rerun."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from mnist_doe import paths, train

from project import env
from test_train import digits, stage_dir  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

CELL = "dense-2x64"
EPOCHS = 40


def finished_epochs() -> int:
    tsv = paths.LIVE_DIR / CELL / "plots" / "metrics" / "val_accuracy.tsv"
    if not tsv.exists():
        return 0
    with tsv.open() as handle:
        return len(list(csv.DictReader(handle, delimiter="\t")))


def start_cell() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mnist_doe.train", CELL],
        env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_killed_cell_resumes_where_it_stopped(stage_dir):  # noqa: F811
    p = yaml.safe_load(open("params.yaml"))
    p["doe"]["cells"] = {CELL: {"family": "dense", "layers": 2, "nodes": 64}}
    p["train"].update(epochs=EPOCHS, batch_size=8)
    with open("params.yaml", "w") as handle:
        yaml.safe_dump(p, handle)

    proc = start_cell()
    deadline = time.monotonic() + 240
    while finished_epochs() < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the cell finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = finished_epochs()
    assert 2 <= done_before < EPOCHS
    assert (train.BACKUP_DIR / CELL).exists()
    assert not (paths.PREDICTIONS_DIR / f"{CELL}.npz").exists()

    rerun = start_cell()
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out
    epochs_run = [line for line in out.splitlines() if line.startswith("Epoch ")]
    # the rerun starts after the last epoch the backup holds, not at epoch 1
    assert epochs_run and epochs_run[0] != f"Epoch 1/{EPOCHS}", epochs_run
    assert epochs_run[-1] == f"Epoch {EPOCHS}/{EPOCHS}"
    assert len(epochs_run) <= EPOCHS - done_before + 1
    assert finished_epochs() == EPOCHS  # the learning curve continues, one row per epoch
    assert (paths.PREDICTIONS_DIR / f"{CELL}.npz").exists()
    summary = json.loads((paths.PREDICTIONS_DIR / f"{CELL}.json").read_text())
    assert summary["epochs"] == EPOCHS  # counted across the interruption
    assert not (train.BACKUP_DIR / CELL).exists()
