"""A backup that cannot be read (a truncated state.npz or done.npz, a missing saved model) is
discarded with one line and the cell ends as a clean run ends, never with a traceback."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from mnist_doe import train
from mnist_doe.common import files, paths

from test_train import cell, stage_dir  # noqa: F401  (fixture)
from project import untimed

pytestmark = pytest.mark.slow


class Interrupted(Exception):
    """Stands for a kill: the cell stops here, its backup as it was."""


def interrupt_at_run(monkeypatch, which: int) -> None:
    """Make train_cell stop as run `which` (0-based) begins; earlier runs finish."""
    calls = []
    original = train.train_run

    def train_run(*args, **kwargs):
        calls.append(1)
        if len(calls) > which:
            raise Interrupted
        return original(*args, **kwargs)

    monkeypatch.setattr(train, "train_run", train_run)


def stop(*args, **kwargs):
    raise Interrupted


def outputs(name: str) -> dict:
    summary = json.loads((paths.PREDICTIONS_DIR / f"{name}.json").read_text())
    predictions = files.load_npz(paths.PREDICTIONS_DIR / f"{name}.npz")
    curves = paths.LIVE_DIR / name / "plots" / "metrics"
    return {"summary": untimed(summary),
            "val": predictions["val"], "test": predictions["test"],
            "curves": {str(p.relative_to(curves)): p.read_text() for p in sorted(curves.rglob("*.tsv"))},
            "model": (paths.MODELS_DIR / name / "model.keras").exists()}


def truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage", ["state", "done", "model"])
def test_a_damaged_backup_is_discarded_in_one_line(stage_dir, monkeypatch, capsys, damage):  # noqa: F811
    raw = yaml.safe_load(open("params.yaml"))
    raw["split"]["replicates"] = 2  # two runs: fold1-rep1 (whose model is the cell's), fold1-rep2
    with open("params.yaml", "w") as handle:
        yaml.safe_dump(raw, handle)
    c = cell("dense", epochs=3)
    backup = train.BACKUP_DIR / c.name

    with monkeypatch.context() as patch:
        if damage == "state":  # killed after the first run's last epoch, before it is marked done
            patch.setattr(train, "save_model", stop)
        else:  # killed as the second run begins
            interrupt_at_run(patch, 1)
        with pytest.raises(Interrupted):
            train.train_cell(c)
    damaged = {"state": backup / "fold1-rep1" / "state.npz", "done": backup / "fold1-rep1.done.npz",
               "model": backup / "model"}[damage]
    assert damaged.exists()
    if damage == "model":
        shutil.rmtree(damaged)
    else:
        truncate(damaged)
    capsys.readouterr()

    train.train_cell(c)  # no traceback: the damaged part is trained again
    said = [line for line in capsys.readouterr().out.splitlines() if str(damaged) in line]
    expected = {
        "state": f"discarding {damaged} (it cannot be read: BadZipFile: ",
        "done": f"train@{c.name}: discarding {damaged} (it cannot be read: BadZipFile: ",
        "model": f"train@{c.name}: training the run of {backup / 'fold1-rep1.done.npz'} again (its {damaged} is missing)",
    }[damage]
    assert len(said) == 1 and said[0].startswith(expected), said
    resumed = outputs(c.name)
    assert not backup.exists()

    train.train_cell(c)  # a clean run
    clean = outputs(c.name)
    assert resumed["summary"] == clean["summary"] and resumed["curves"] == clean["curves"] and clean["model"]
    for split in ("val", "test"):
        np.testing.assert_array_equal(resumed[split], clean[split])


def test_a_half_written_dvclive_summary_does_not_stop_a_resumed_cell(tmp_path, capsys):
    summary = tmp_path / "metrics.json"
    summary.write_text('{"step": 3, "loss"')  # a kill in the middle of DVCLive's write
    assert train.drop_unreadable_summary("c", summary) and not summary.exists()
    assert "train@c: " in capsys.readouterr().out
    summary.write_text('{"step": 3}')
    assert not train.drop_unreadable_summary("c", summary) and summary.exists()
