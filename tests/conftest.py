"""Shared fixtures: small Kaggle-style CSV files and a project folder with its params.yaml."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


# The test files that take longest, handed to the workers first (make test keeps this order
# with --no-loadscope-reorder), so that none is left running alone at the end; the first
# builds the shared tiny run (tests/project.py) that test_submit_refit, further down, copies.
FIRST = ("test_pipeline.py", "test_engine_keras.py", "test_submit_refit.py", "test_callbacks.py",
         "test_train.py", "test_refit.py", "test_loop.py", "test_forward.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))  # stable: the rest in their order


def kaggle_csv(
    path: str | Path,
    pixels: Any,
    labels: Sequence | None = None,
    *,
    header: str | None = "digit",
) -> Path:
    """Write a Kaggle-style CSV: a label column (when `labels` is given), then the pixels.

    `pixels` is any 2-D array-like; each cell is written with str(), so a test can plant
    text such as "abc" or "" in it. `header` is "digit" (label,pixel0..), "fashion"
    (label,pixel1..) or None (no header line).
    """
    path = Path(path)
    rows = [[str(cell) for cell in row] for row in pixels]
    width = len(rows[0]) if rows else 0
    lines = []
    if header is not None:
        first = 0 if header == "digit" else 1
        names = [f"pixel{j + first}" for j in range(width)]
        lines.append(",".join((["label"] if labels is not None else []) + names))
    for i, row in enumerate(rows):
        lines.append(",".join(([str(labels[i])] if labels is not None else []) + row))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_images(labels: Sequence, side: int = 4, seed: int = 0) -> np.ndarray:
    """Distinct random uint8 images (len(labels), side*side), one per label given."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(len(labels), side * side), dtype=np.uint8)
    images[:, 0] = np.arange(len(labels)) % 256  # with the next cell, keeps rows distinct
    images[:, 1] = np.arange(len(labels)) // 256 % 256
    return images


def write_params(root: str | Path = ".", **sections: dict) -> Path:
    """Write params.yaml: the repository's params with each given section updated."""
    params = copy.deepcopy(DEFAULT_PARAMS)
    for name, values in sections.items():
        params[name] = {**params.get(name, {}), **values}
    path = Path(root) / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """An empty project folder, made the working directory, holding the default params.yaml."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path)
    return tmp_path
