"""One-at-a-time tuning with real `dvc exp run` steps on tiny data: winners carried forward,
every step an experiment, and a killed study resumed without retraining its finished steps."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import yaml

from mnist_doe.readers.tiny import write_pair

from project import BIN, dvc, env, make_project, run, tiny_overrides

# end-to-end studies of minutes: make test-all and CI run them, make test leaves them out
pytestmark = [pytest.mark.slow, pytest.mark.long]

DESIGN = {
    "train": {"epochs": 1, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.003, "dropout": 0.0,
              "patience": 0, "seed": 42},
    "refit": {"cell": "best", "epochs": "best"},
    "tuning": {
        "start": {"family": "dense", "layers": 1, "nodes": 16},
        "steps": [
            {"knob": "nodes", "values": [4, 32]},
            {"knob": "learning_rate", "values": [0.0001, 0.003]},
        ],
    },
}


@pytest.fixture()
def project(tmp_path):
    project = make_project(tmp_path / "project", tiny_overrides("digit"))
    write_pair(project / "data/external", n_train=300, n_test=60, style="digit")
    (project / "designs").mkdir(exist_ok=True)
    (project / "designs/oat.yaml").write_text(yaml.safe_dump(DESIGN, sort_keys=False))
    run(project, "git", "add", "-A")
    run(project, "git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "design")
    return project


def tune(project, *args, check=True):
    return run(project, str(BIN / "python"), "-m", "mnist_doe.tune", "designs/oat.yaml", *args, check=check)


def test_steps_carry_their_winner_and_each_is_an_experiment(project):
    done = subprocess.run([str(BIN / "python"), "-m", "mnist_doe.tune", "designs/oat.yaml"], cwd=project,
                          env={**env(), "MNIST_DOE_PROGRESS": "1"}, capture_output=True, text=True, check=True)
    # the tuner's bar counts the cells of both steps, naming the step's knob
    assert "tuning oat, step 2 of 2: learning_rate: 100%" in done.stderr and "4/4" in done.stderr
    record = json.loads((project / "tuning/oat.json").read_text())
    first, second = record["steps"]
    # step 2's cells are step 1's winner with each learning rate
    winner_nodes = first["winner"]
    assert winner_nodes in (4, 32) and record["winners"]["nodes"] == winner_nodes
    accs = {cell: r["val_accuracy"] for cell, r in first["rows"].items()}
    assert first["best_cell"] == min(accs, key=lambda c: (-round(accs[c], 6), c))
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert {c["nodes"] for c in params["doe"]["cells"].values()} == {winner_nodes}
    assert sorted(c["learning_rate"] for c in params["doe"]["cells"].values()) == [0.0001, 0.003]
    assert params["refit"]["cell"] == "none"  # a step compares cells; it refits none of them
    assert second["winner"] == record["winners"]["learning_rate"]
    shown = dvc(project, "exp", "show", "--no-pager", "--csv").stdout
    assert "oat-step1-nodes" in shown and "oat-step2-learning-rate" in shown
    table = (project / "tuning/oat.md").read_text()
    assert "## Step 2: learning_rate" in table and (project / "tuning/oat.png").stat().st_size > 0
    assert "winners" in done.stdout


def test_a_killed_study_resumes_from_its_last_finished_step(project):
    process = subprocess.Popen([str(BIN / "python"), "-m", "mnist_doe.tune", "designs/oat.yaml"], cwd=project,
                               env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    record = project / "tuning/oat.json"
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
        if record.exists() and len(json.loads(record.read_text())["steps"]) >= 1:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.2)
    process.wait()
    assert record.exists(), "the first step never finished"
    again = tune(project)
    assert "tune: step 1 (nodes) done before" in again.stdout
    # the first step's cells were not trained again
    assert "Running stage 'train@s1-" not in again.stdout
    assert len(json.loads(record.read_text())["steps"]) == 2


def test_a_design_may_name_several_studies_and_bad_steps_are_one_line(tmp_path):
    from mnist_doe import tune as tune_module
    from mnist_doe.common.params import ParamsError

    study = DESIGN["tuning"]
    studies = tune_module.read_studies({"tuning": {"mlp": study, "cnn": study}}, tmp_path / "d.yaml")
    assert list(studies) == ["mlp", "cnn"] and studies["cnn"]["steps"][0]["knob"] == "nodes"
    assert list(tune_module.read_studies(DESIGN, tmp_path / "d.yaml")) == [""]
    bad = {"tuning": {"start": {"family": "dense", "layers": 1, "nodes": 8}, "steps": [{"knob": "nodes", "values": [8]}]}}
    with pytest.raises(ParamsError, match=r"'tuning'\.steps\[1\] must be \{knob: <a cell key>, values: \[two or more\]\}"):
        tune_module.read_studies(bad, tmp_path / "d.yaml")
    assert tune_module.cell_name(2, "learning_rate", 0.001) == "s2-learning_rate-0p001"
    assert tune_module.cell_name(3, "nodes", [16, 32]) == "s3-nodes-16-32"
