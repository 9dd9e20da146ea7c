"""Whole-pipeline wall time: `dvc repro` of a design in a fresh copy of the project.

    python bench/bench_pipeline.py default    # the default DOE on the embedded digits
    python bench/bench_pipeline.py fashion    # seed 001's design on the full Fashion-MNIST (60k)

`fashion` needs Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist/).
Each run starts from an empty DVC cache, so every stage runs; the wall time covers
ingest to report. Results go to bench/results/pipeline_<name>.json and are merged
into bench/results/pipeline.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from project import dvc, make_project  # noqa: E402

from mnist_doe.readers import idx  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def run(name: str) -> dict:
    overrides = {}
    with tempfile.TemporaryDirectory(prefix=f"mnist-doe-bench-{name}-") as tmp:
        if name == "fashion":
            if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
                raise SystemExit(f"{FASHION}: not found; apt-get install dataset-fashion-mnist")
            overrides = {"data": {"train_csv": "data/external/train.csv", "test_csv": "data/external/test.csv"}}
        project = make_project(Path(tmp) / "project", overrides)
        if name == "fashion":
            idx.main([str(FASHION), str(project / "data/external")])
        start = time.perf_counter()
        out = dvc(project, "repro").stdout
        wall = time.perf_counter() - start
        doe = json.loads((project / "metrics/doe.json").read_text())
    cells = {
        cell: {k: m[k] for k in ("train_seconds", "val_accuracy", "test_accuracy") if k in m}
        for cell, m in doe["cells"].items()
    }
    return {
        "design": name,
        "wall_seconds": round(wall, 1),
        "stages_run": len(re.findall(r"Running stage", out)),
        "best_cell": doe["best_cell"],
        "cells": cells,
        "machine": {"cpu": cpu_model(), "cores": len(__import__("os").sched_getaffinity(0)),
                    "python": platform.python_version()},
    }


def markdown(results: list[dict]) -> str:
    lines = ["| design | wall (min) | stages | best cell | its test accuracy |", "|---|---|---|---|---|"]
    for r in results:
        best = r["cells"][r["best_cell"]]
        lines.append(
            f"| {r['design']} | {r['wall_seconds'] / 60:.1f} | {r['stages_run']} | {r['best_cell']} | "
            f"{best.get('test_accuracy', float('nan')):.4f} |"
        )
    machine = results[0]["machine"]
    lines.append(f"\nMachine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("design", choices=("default", "fashion"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results")
    args = parser.parse_args()
    result = run(args.design)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"pipeline_{args.design}.json").write_text(json.dumps(result, indent=2) + "\n")
    found = [json.loads(p.read_text()) for p in sorted(args.out.glob("pipeline_*.json"))]
    (args.out / "pipeline.md").write_text(markdown(found))
    print(markdown([result]), end="")


if __name__ == "__main__":
    main()
