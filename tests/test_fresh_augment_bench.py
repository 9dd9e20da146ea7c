"""The training bench's fresh-augmentation row: images/s with fresh augmentation against ours."""

from __future__ import annotations

import json

import pytest

from test_bench_train import CELL, bench, report


def test_the_fresh_way_is_compared_with_ours(tmp_path):
    accs = {"seed": [0.7, 0.72], "ours": [0.71, 0.73], "mixed": [0.7, 0.72], "fresh": [0.72, 0.74]}
    seconds = {"seed": 0.3, "ours": 0.1, "mixed": 0.1, "fresh": 0.125}
    summary = json.loads(report(tmp_path / "a.json", 42, accs, seconds).read_text())
    fresh = summary["cells"][CELL]["fresh"]
    assert fresh["of_ours"] == pytest.approx(0.8) and fresh["of_ours_paired"] == pytest.approx(0.8)
    assert not fresh["meets_target"]  # 20% slower: over the 15% allowed
    assert "| | fresh augmentation | 9,600 | 0.80x ours | 0.80x | 0.85x ours | 0.7300 | |" in bench.markdown(summary)
    # reports with and without the fresh way do not pool
    plain = report(tmp_path / "b.json", 100, {k: v for k, v in accs.items() if k != "fresh"}, seconds)
    with pytest.raises(ValueError, match="has the ways seed, ours, mixed, an earlier file seed, ours, mixed, fresh"):
        bench.pool([tmp_path / "a.json", plain])
    assert len(bench.pool([tmp_path / "a.json", report(tmp_path / "c.json", 100, accs, seconds)])
               ["cells"][CELL]["fresh"]["test_accuracy_runs"]) == 4
