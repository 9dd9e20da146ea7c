"""An interrupted train cell resumes from its last finished epoch when rerun."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
import yaml

from mnist_doe import train
from mnist_doe.common import paths

from project import env, kill_after
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


@pytest.mark.long  # an end-to-end study of minutes: make test-all, CI
def test_killed_cell_resumes_where_it_stopped(stage_dir):  # noqa: F811
    p = yaml.safe_load(open("params.yaml"))
    p["doe"]["cells"] = {CELL: {"family": "dense", "layers": 2, "nodes": 64}}
    p["train"].update(epochs=EPOCHS, batch_size=8)
    with open("params.yaml", "w") as handle:
        yaml.safe_dump(p, handle)

    proc = start_cell()
    kill_after(proc, finished_epochs, 2)
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


@pytest.mark.parametrize("run_name", ["", "fold2"])
def test_epochs_logged_after_the_last_backup_are_dropped_on_resume(tmp_path, run_name):
    # the window a kill can hit: epoch 3 logged, its backup not yet written
    from dvclive import Live

    run = train.Run(fold=1, replicate=0, name=run_name)
    live = Live(dir=str(tmp_path / "live"), save_dvc_exp=False, dvcyaml=False)
    log = train.RunLog(live, run)
    log.rewind(0)
    for epoch in range(3):
        log.log_metric("loss", 1.0 / (epoch + 1))
        log.log_metric("val_accuracy", 0.5 + epoch / 10)
        log.next_step()
    other = tmp_path / "live" / "plots" / "metrics" / "other.tsv"  # not this run's curve
    other.write_text("step\tother\n0\t1\n1\t1\n2\t1\n")

    resumed = Live(dir=str(tmp_path / "live"), resume=True, save_dvc_exp=False, dvcyaml=False)
    log = train.RunLog(resumed, run)
    log.rewind(2)  # the backup holds 2 epochs: epoch 3 is trained again
    log.log_metric("loss", 0.3)
    log.log_metric("val_accuracy", 0.7)
    log.next_step()

    curves = tmp_path / "live" / "plots" / "metrics" / run_name
    loss = (curves / "loss.tsv").read_text().splitlines()
    assert loss == ["step\tloss", "0\t1.0", "1\t0.5", "2\t0.3"]
    assert [row.split("\t")[0] for row in (curves / "val_accuracy.tsv").read_text().splitlines()[1:]] == ["0", "1", "2"]
    if run_name:
        assert other.read_text().count("\n") == 4  # another run's curve is left alone
