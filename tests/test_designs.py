"""The five seed designs: each self-contained, each parsing, its networks of the notebook's
parameter count, its tuning steps valid; and a design run end to end on tiny data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from mnist_doe import design, tune
from mnist_doe.common import params
from mnist_doe.readers.tiny import write_pair

from project import ROOT, dvc, make_project, run, set_params, tiny_overrides

DESIGNS = sorted((ROOT / "designs").glob("seed-00*.yaml"))
SECTIONS = {"data", "validate", "split", "budget", "augment", "train", "doe", "refit", "report"}

# what each notebook printed for its networks (model.summary's "Total params")
PRINTED = {
    "seed-002": {"model-0": 101_770, "model-1": 337_674, "model-2": 535_818, "model-3": 535_818,
                 "model-4": 1_462_538, "model-5": 535_818, "model-6": 535_818, "model-7": 1_462_538,
                 "model-a": 693_962, "model-b": 241_546, "model-c": 422_026, "model-d": 242_954},
    "seed-003": {"baseline-cnn": 543_644, "dnn-sgd-20-epochs": 1_346_136},
}
CLASSES = {"seed-002": 10, "seed-003": 24}


def applied(tmp_path: Path, *names: str) -> params.Params:
    target = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", target)
    for name in names:
        design.main([str(ROOT / "designs" / f"{name}.yaml"), "--params", str(target)])
    return params.load(target)


def test_there_are_five_and_each_sets_every_section():
    assert [d.stem for d in DESIGNS] == [f"seed-00{i}" for i in range(5)]
    for path in DESIGNS:
        assert SECTIONS <= set(yaml.safe_load(path.read_text())), path.name


@pytest.mark.parametrize("first", [d.stem for d in DESIGNS])
def test_applying_one_after_another_is_applying_the_last_alone(tmp_path, first):
    for last in ("seed-001", "seed-003"):
        (tmp_path / "a").mkdir(exist_ok=True)
        (tmp_path / "b").mkdir(exist_ok=True)
        assert applied(tmp_path / "a", first, last) == applied(tmp_path / "b", last)


@pytest.mark.parametrize("name", sorted(PRINTED))
def test_the_seed_networks_have_the_notebooks_parameter_counts(tmp_path, name):
    from mnist_doe.engine import models

    cells = applied(tmp_path, name).cells
    for cell, count in PRINTED[name].items():
        model = models.build(cells[cell].family, 784, CLASSES[name], cells[cell].net)
        assert model.count_params() == count, (name, cell)


def test_every_tuning_step_declares_valid_cells(tmp_path):
    spec = yaml.safe_load((ROOT / "designs/seed-004.yaml").read_text())
    studies = tune.read_studies(spec, ROOT / "designs/seed-004.yaml")
    assert list(studies) == ["mlp", "cnn"]
    for study in studies.values():
        winners = {}
        for k, step in enumerate(study["steps"], 1):
            cells = tune.step_cells(study["start"], winners, k, step["knob"], step["values"])
            raw = yaml.safe_load((ROOT / "params.yaml").read_text())
            raw["doe"], raw["refit"] = {"cells": cells}, tune.no_refit(spec["refit"])
            parsed = params.parse(raw)
            assert len(parsed.cells) == len(step["values"])
            winners[step["knob"]] = step["values"][0]


@pytest.mark.long  # an end-to-end study of minutes: make test-all, CI
@pytest.mark.slow
def test_seed_designs_run_end_to_end_on_tiny_data(tmp_path):
    """seed 003 (test-only, 24 letter names) and seed 004 (fresh augmentation, baselines with
    their knobs) applied to a project, their data replaced by a tiny pair, epochs cut to one
    and two cells kept, then dvc repro."""
    for name, style, keep in (("seed-003", "sign", ["baseline-cnn", "dnn-adam-lr0p001"]),
                              ("seed-004", "digit", ["logreg-c0p1", "cnn-final"])):
        project = make_project(tmp_path / name / "project")
        run(project, "python", "-m", "mnist_doe.design", str(ROOT / "designs" / f"{name}.yaml"))
        current = yaml.safe_load((project / "params.yaml").read_text())
        cells = {c: {**spec, "epochs": 1} for c, spec in current["doe"]["cells"].items() if c in keep}
        overrides = tiny_overrides(style, cells=cells)
        set_params(project, {"data": {**current["data"], **overrides["data"]}, "doe": {"cells": cells, "ensemble": 2},
                             "refit": {**current["refit"], "epochs": 1}})
        write_pair(project / "data/external", n_train=300, n_test=80, style=style)
        dvc(project, "repro")
        doe = json.loads((project / "metrics/doe.json").read_text())
        assert set(doe["cells"]) == set(keep) and doe["ensemble"]["members"]
        assert (project / "submissions/best.csv").exists()
        refit = json.loads((project / "models/refit/refit.json").read_text())
        if name == "seed-004":  # its final CNN trained again on every labelled row, transformed afresh
            assert (refit["cell"], refit["augment"], refit["rows"], refit["images_per_epoch"]) == (
                "cnn-final", "fresh", 300, 300)
            best = (project / "submissions/best.csv").read_bytes()
            assert best == (project / "submissions/refit.csv").read_bytes()
        else:
            assert refit["cell"] is None and not (project / "submissions/refit.csv").exists()
