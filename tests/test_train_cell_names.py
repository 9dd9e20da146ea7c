"""A cell name a shell would read as a command never runs as one: real `dvc repro`, the stages
before train cached (so no earlier stage reads params.yaml first) and not."""

from __future__ import annotations

import pytest

from mnist_doe.readers.tiny import write_pair

from project import dvc, make_project, set_params, tiny_overrides
from test_pipeline import fashion_run

pytestmark = pytest.mark.slow

GOOD = {"dense-1x8": {"family": "dense", "layers": 1, "nodes": 8}}
NAMES = ["x;touch pwned", "$(touch pwned)", "y';touch pwned;'"]


def refused(name: str) -> str:
    return (
        f"cell name {name!r} must start with a letter or digit and hold only letters, digits, '-' and '_'"
    )


def models(project) -> list[str]:
    return sorted(p.name for p in (project / "models").iterdir())


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """A tiny project whose stages are run and cached: a copy of the session's shared run."""
    project, _ = fashion_run(tmp_path_factory, "names")
    return project


@pytest.mark.parametrize("name", NAMES)
def test_a_bad_cell_name_is_refused_before_a_shell_reads_it(cached, name):
    models_before = models(cached)
    set_params(cached, {"doe": {"cells": {name: {"family": "dense", "layers": 1, "nodes": 8}}}})
    failed = dvc(cached, "repro", check=False)
    out = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "Stage 'augment' didn't change, skipping" in out  # train is the first stage that runs
    assert not (cached / "pwned").exists(), out
    lines = [line for line in out.splitlines() if "train: error:" in line]
    assert lines == [f"train: error: params.yaml: {refused(name)}"], out
    assert models(cached) == models_before  # the shared run's own, no other


def test_the_first_stage_refuses_a_bad_name_in_a_fresh_project(tmp_path):
    name = NAMES[0]
    project = make_project(tmp_path / "project", tiny_overrides("fashion", cells={name: GOOD["dense-1x8"]}))
    write_pair(project / "data/external", n_train=100, n_test=20, style="fashion")
    failed = dvc(project, "repro", check=False)
    out = failed.stdout + failed.stderr
    assert failed.returncode != 0 and not (project / "pwned").exists()
    assert f"ingest: error: params.yaml: {refused(name)}" in out
    assert not (project / "data/raw").exists()
