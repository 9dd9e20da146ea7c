"""A cell name a shell would read as a command never runs as one: real `dvc repro`, the stages
before train cached (so no earlier stage reads params.yaml first) and not."""

from __future__ import annotations

import pytest

from mnist_doe.readers.tiny import write_pair

from project import dvc, make_project, set_params, tiny_overrides

pytestmark = pytest.mark.slow

GOOD = {"dense-1x8": {"family": "dense", "layers": 1, "nodes": 8}}
NAMES = ["x;touch pwned", "$(touch pwned)", "y';touch pwned;'"]


def refused(name: str) -> str:
    return (
        f"cell name {name!r} must start with a letter or digit and hold only letters, digits, '-' and '_'"
    )


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """A tiny project whose stages up to augment are run and cached."""
    project = make_project(tmp_path_factory.mktemp("names") / "project", tiny_overrides("fashion", cells=GOOD))
    write_pair(project / "data/external", n_train=100, n_test=20, style="fashion")
    dvc(project, "repro", "augment")
    return project


@pytest.mark.parametrize("name", NAMES)
def test_a_bad_cell_name_is_refused_before_a_shell_reads_it(cached, name):
    set_params(cached, {"doe": {"cells": {name: {"family": "dense", "layers": 1, "nodes": 8}}}})
    failed = dvc(cached, "repro", check=False)
    out = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "Stage 'augment' didn't change, skipping" in out  # train is the first stage that runs
    assert not (cached / "pwned").exists(), out
    lines = [line for line in out.splitlines() if "train: error:" in line]
    assert lines == [f"train: error: params.yaml: {refused(name)}"], out
    assert not (cached / "models").exists()


def test_the_first_stage_refuses_a_bad_name_in_a_fresh_project(tmp_path):
    name = NAMES[0]
    project = make_project(tmp_path / "project", tiny_overrides("fashion", cells={name: GOOD["dense-1x8"]}))
    write_pair(project / "data/external", n_train=100, n_test=20, style="fashion")
    failed = dvc(project, "repro", check=False)
    out = failed.stdout + failed.stderr
    assert failed.returncode != 0 and not (project / "pwned").exists()
    assert f"ingest: error: params.yaml: {refused(name)}" in out
    assert not (project / "data/raw").exists()
