"""Several cells at once (mnist_doe.parallel): real dvc on tiny data, against a serial `dvc repro`.

One machine: 2 workers give the same metrics and the same dvc.lock as `dvc repro`, and a
second run trains nothing. Several machines: two clones each train half of the cells and
push to a local-folder remote; a third clone's `dvc repro --pull` trains nothing.
"""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import yaml

from mnist_doe import parallel
from mnist_doe.readers.tiny import write_pair

from project import ROOT, dvc, make_project, run, tiny_overrides

CELLS = {
    "dense-2x32": {"family": "dense", "layers": 2, "nodes": 32, "optimizer": "adam", "learning_rate": 0.003},
    # a CNN computes each batch in 2 parts on 2 cores, in 1 part on 1: the layout a worker must keep
    "cnn-1x8": {"family": "cnn", "layers": 1, "nodes": 8, "optimizer": "adam", "learning_rate": 0.002},
    "lstm-1x8": {"family": "lstm", "layers": 1, "nodes": 8, "optimizer": "adam", "learning_rate": 0.003},
    # scikit-learn on OpenBLAS, whose thread count changes its numbers
    "logreg": {"family": "logreg", "layers": 1, "nodes": 1},
}
TRAIN = [f"train@{cell}" for cell in CELLS]


def tiny_project(path):
    project = make_project(path, tiny_overrides("fashion", cells=CELLS))
    write_pair(project / "data/external", n_train=300, n_test=60, style="fashion")
    return project


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """One snapshot of the sources for every project here: the tree may change meanwhile."""
    return tiny_project(tmp_path_factory.mktemp("template") / "project")


def copy_of(template, dest):
    shutil.copytree(template, dest, symlinks=True)
    return dest


def parallel_cli(project, *args: str):
    return run(project, sys.executable, "-m", "mnist_doe.parallel", *args)


def results(project) -> dict:
    return {name: (project / name).read_text() for name in ("metrics/doe.json", "metrics/summary.json", "dvc.lock")}


# ------------------------------------------------------------------------------ no dvc needed


def test_worker_k_of_n_takes_every_nth_cell():
    cells = [f"train@c{i}" for i in range(5)]
    assert parallel.share(cells, (1, 2)) == ["train@c0", "train@c2", "train@c4"]
    assert parallel.share(cells, (2, 2)) == ["train@c1", "train@c3"]
    assert sorted(sum((parallel.share(cells, (k, 3)) for k in (1, 2, 3)), [])) == cells
    assert parallel.parse_worker("2/3") == (2, 3)
    for bad in ("0/2", "3/2", "1", "a/b"):
        with pytest.raises(Exception, match="K/N"):
            parallel.parse_worker(bad)


def test_a_worker_copies_sources_and_checks_out_upstream_outputs():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    upstream, checked_out, copied = parallel.what_a_worker_needs(stages)
    assert set(upstream) == {"validate", "split", "augment"}
    assert set(checked_out) == {"data/clean", "data/split/indices.npz", "data/augmented/train.npz"}
    assert "src/mnist_doe/engine" in copied and "src/mnist_doe/train.py" in copied


def test_workers_take_the_longest_cells_first(tmp_path):
    cells = {"dense-2x14": ("dense", 2, 14), "lstm-1x50": ("lstm", 1, 50), "cnn-3x56": ("cnn", 3, 56),
             "cnn-2x28": ("cnn", 2, 28), "logreg": ("logreg", 1, 1)}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"doe": {"cells": {
        name: {"family": f, "layers": lay, "nodes": n} for name, (f, lay, n) in cells.items()}}}))
    names = [f"train@{name}" for name in cells]
    # never timed: the slower families first, then the bigger networks, else dvc.yaml's order
    assert parallel.longest_first(tmp_path, names) == [
        "train@lstm-1x50", "train@cnn-3x56", "train@cnn-2x28", "train@dense-2x14", "train@logreg"]
    # a cell's last training time under timings/ counts; cells never timed still go first
    (tmp_path / "timings").mkdir()
    for name, seconds in (("dense-2x14", 30.0), ("lstm-1x50", 5.0), ("cnn-3x56", 9.0), ("cnn-2x28", "?")):
        (tmp_path / "timings" / f"{name}.json").write_text(json.dumps({"train_seconds": seconds}))
    assert parallel.longest_first(tmp_path, names) == [
        "train@cnn-2x28", "train@logreg", "train@dense-2x14", "train@cnn-3x56", "train@lstm-1x50"]


def test_each_worker_gets_its_share_of_threads_and_gpus(monkeypatch):
    monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    env = parallel.worker_env(0, 2, 2, [])
    assert env["MNIST_DOE_CPU_THREADS"] == "1" and "CUDA_VISIBLE_DEVICES" not in env
    assert parallel.worker_env(1, 3, 16, [])["MNIST_DOE_CPU_THREADS"] == "5"
    four = ["0", "1", "2", "3"]
    assert [parallel.worker_env(i, 2, 16, four)["CUDA_VISIBLE_DEVICES"] for i in (0, 1)] == ["0,2", "1,3"]
    shared = parallel.worker_env(1, 2, 16, ["0"])
    assert shared["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" and "CUDA_VISIBLE_DEVICES" not in shared
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert parallel.visible_gpus() == ["3", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert parallel.visible_gpus() == []


# ------------------------------------------------------------------------------ real dvc


@pytest.fixture(scope="module")
def serial(template, tmp_path_factory):
    project = copy_of(template, tmp_path_factory.mktemp("serial") / "project")
    dvc(project, "repro")
    return project


@pytest.mark.long  # an end-to-end study of minutes: make test-all, CI
@pytest.mark.slow
def test_two_workers_give_what_a_serial_repro_gives(template, serial, tmp_path):
    project = copy_of(template, tmp_path / "project")
    first = parallel_cli(project, "--jobs", "2").stdout
    assert "parallel: 4 cells on 2 workers" in first
    for cell in TRAIN:
        assert f"{cell}: trained by worker" in first
        # this workspace trained nothing: its dvc repro found every cell in the run-cache
        assert f"Stage '{cell}' is cached - skipping run, checking out outputs" in first
    assert "Running stage 'train@" not in first
    assert "by worker 1 in" in first and "by worker 2 in" in first
    for stage in ("evaluate", "confusion", "submit", "report"):
        assert f"Running stage '{stage}'" in first

    assert results(project) == results(serial)  # metrics and dvc.lock: every output's hash
    assert not (project / ".dvc/tmp/parallel/worker-1").exists()  # workspaces go when done
    timing = json.loads((project / "timings/doe.json").read_text())
    assert set(timing) == set(CELLS)  # the workers' timings came back
    assert "changed" not in dvc(project, "status").stdout

    again = parallel_cli(project, "--jobs", "2").stdout
    assert "Running stage" not in again and ": trained by worker" not in again
    assert "parallel: 0 cells trained by workers, 0 here" in again
    assert "Data and pipelines are up to date." in again
    assert results(project) == results(serial)


@pytest.mark.long  # an end-to-end study of minutes: make test-all, CI
@pytest.mark.slow
def test_two_machines_push_their_halves_a_third_collects_and_trains_nothing(template, serial, tmp_path):
    origin = copy_of(template, tmp_path / "origin")
    remote = tmp_path / "remote"
    dvc(origin, "remote", "add", "-d", "shared", str(remote))
    run(origin, "git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam", "shared remote")
    clones = {}
    for name in ("a", "b", "c"):
        run(tmp_path, "git", "clone", "-q", str(origin), name)
        clones[name] = tmp_path / name
        # the data files are not in git (data/external/*.csv): each machine has its own copy
        write_pair(clones[name] / "data/external", n_train=300, n_test=60, style="fashion")

    a = parallel_cli(clones["a"], "--worker", "1/2", "--jobs", "1", "--push").stdout
    b = parallel_cli(clones["b"], "--worker", "2/2", "--jobs", "2", "--push").stdout  # 2 workers here too
    halves = {"a": TRAIN[0::2], "b": TRAIN[1::2]}
    for name, out in (("a", a), ("b", b)):
        for cell in TRAIN:
            trained = f"Running stage '{cell}'" in out or f"{cell}: trained by worker" in out
            assert trained == (cell in halves[name]), (name, cell)
        assert "Running stage 'evaluate'" not in out  # a worker machine writes no report
    assert (remote / "runs").is_dir()

    collected = dvc(clones["c"], "repro", "--pull").stdout
    assert "Running stage 'train@" not in collected
    for cell in TRAIN:
        assert f"Stage '{cell}' is cached - skipping run, checking out outputs" in collected
    doe = json.loads((clones["c"] / "metrics/doe.json").read_text())
    assert set(doe["cells"]) == set(CELLS) and doe["best_cell"] in CELLS
    assert "| cell |" in (clones["c"] / "metrics/doe.md").read_text()
    assert (clones["c"] / "metrics/report.md").exists()
    # the same numbers and the same dvc.lock as one machine's serial dvc repro
    assert results(clones["c"]) == results(serial)
