"""Tiny-data smoke pipeline: a fresh copy of the project, real `dvc repro`, outputs checked."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from project import dvc, make_project, tiny_overrides  # noqa: E402

from mnist_doe.readers.tiny import write_pair  # noqa: E402


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mnist-doe-smoke-") as tmp:
        project = make_project(Path(tmp) / "project", tiny_overrides(style="digit"))
        write_pair(project / "data/external", n_train=300, n_test=100, style="digit")
        print(dvc(project, "repro").stdout[-3000:])
        doe = json.loads((project / "metrics/doe.json").read_text())
        for cell, metrics in doe["cells"].items():
            rows = pd.read_csv(project / "submissions" / f"{cell}.csv")
            assert list(rows.columns) == ["ImageId", "Label"], rows.columns
            assert len(rows) == 100 and rows["ImageId"].tolist() == list(range(1, 101))
            assert "test_accuracy" in metrics, metrics
            print(f"smoke: {cell}: val {metrics['val_accuracy']:.3f}, test {metrics['test_accuracy']:.3f}")
        again = dvc(project, "repro").stdout
        assert "up to date" in again, again
        print(f"smoke: {len(doe['cells'])} cells, second repro up to date: ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
