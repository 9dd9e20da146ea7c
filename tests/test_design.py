"""Ready-made designs apply to params.yaml section by section and stay valid."""

from __future__ import annotations

import shutil

import pytest
import yaml

from mnist_doe import design
from mnist_doe.common import params

from project import ROOT

DESIGNS = sorted((ROOT / "designs").glob("*.yaml"))


@pytest.fixture()
def params_copy(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path / "params.yaml"


def test_every_design_applies_and_parses(params_copy):
    assert [d.name for d in DESIGNS] == ["fashion-best.yaml"] + [f"seed-00{i}.yaml" for i in range(5)]
    for path in DESIGNS:
        spec = {k: v for k, v in yaml.safe_load(path.read_text()).items() if k != "tuning"}  # mnist_doe.tune's
        text = design.apply(params_copy.read_text(), spec)
        params.parse(yaml.safe_load(text))


def test_seed_000_gives_its_14_cells_and_keeps_the_comments(params_copy):
    design.main([str(ROOT / "designs/seed-000.yaml"), "--params", str(params_copy)])
    before = yaml.safe_load((ROOT / "params.yaml").read_text())
    after = yaml.safe_load(params_copy.read_text())
    cells = after["doe"]["cells"]
    assert len(cells) == 14
    assert {c["family"] for c in cells.values()} == {"dense", "cnn", "lstm"}
    assert after["data"] == before["data"] and after["validate"] == before["validate"]
    assert after["augment"]["copies"] == 0 and after["train"]["optimizer"] == "adam"
    # a design sets every section (so designs do not inherit from each other); the comments
    # between sections survive
    assert "# Every knob of the pipeline, one section per stage." in params_copy.read_text()


def test_the_default_params_are_seed_001(params_copy):
    design.main([str(ROOT / "designs/seed-001.yaml"), "--params", str(params_copy)])
    assert params.load(params_copy) == params.load(ROOT / "params.yaml")


def test_an_invalid_design_is_refused_and_params_untouched(params_copy, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("doe:\n  cells:\n    x: {family: gru, layers: 1, nodes: 2}\n")
    original = params_copy.read_text()
    with pytest.raises(params.ParamsError, match="'doe.cells.x.family' is 'gru'"):
        design.main([str(bad), "--params", str(params_copy)])
    assert params_copy.read_text() == original


def test_other_doe_keys_stay_under_doe(params_copy, tmp_path):
    spec = tmp_path / "d.yaml"
    spec.write_text("doe:\n  ensemble: 2\n  cells:\n    a: {family: dense, layers: 1, nodes: 8}\n"
                    "    b: {family: dense, layers: 2, nodes: 8}\n")
    design.main([str(spec), "--params", str(params_copy)])
    applied = params.load(params_copy)
    assert applied.ensemble == 2 and list(applied.cells) == ["a", "b"]
