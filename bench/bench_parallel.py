"""Wall time of one design, serial `dvc repro` against `python -m mnist_doe.parallel --jobs N`.

    python bench/bench_parallel.py                 # seed 000's design (16 cells), 2 workers
    python bench/bench_parallel.py --epochs 2      # the same design with fewer epochs
    python bench/bench_parallel.py --design designs/seed-001.yaml --jobs 4

Both runs start from one snapshot of the project (a fresh copy each, an empty DVC cache, the
embedded digits) and cover ingest to report. The serial run goes first, then the parallel
one; afterwards metrics/doe.json, metrics/summary.json and dvc.lock of the two are compared.
Writes bench/results/<machine kind>/parallel.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from project import dvc, make_project, run  # noqa: E402

COMPARED = ("metrics/doe.json", "metrics/summary.json", "dvc.lock")


def cpu() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    return model, flags


def machine_kind(model: str, flags: set[str]) -> str:
    """The folder name bench/results/ uses for this kind of machine (epyc-avx512, xeon-amx, ...)."""
    if "amx_bf16" in flags:
        return "xeon-amx"
    vector = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "sse"
    maker = "epyc" if "EPYC" in model else "xeon" if "Xeon" in model else re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    return f"{maker}-{vector}"


def timed(command, *args) -> tuple[float, str]:
    began = time.perf_counter()
    out = command(*args).stdout
    return time.perf_counter() - began, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--design", type=Path, default=ROOT / "designs/seed-000.yaml")
    parser.add_argument("--epochs", type=int, help="override the design's train.epochs (and every cell's)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--kind", help="the machine kind's folder under bench/results/ (default: from the CPU)")
    parser.add_argument("--keep", type=Path, help="keep the two projects under this folder")
    args = parser.parse_args()
    model, flags = cpu()
    kind = args.kind or machine_kind(model, flags)
    out_dir = ROOT / "bench/results" / kind

    tmp = Path(tempfile.mkdtemp(prefix="mnist-doe-bench-parallel-"))
    try:
        # one snapshot of the sources for both runs: the embedded digits, the design applied
        template = make_project(tmp / "template", {"data": {"train_csv": "", "test_csv": ""}})
        run(template, sys.executable, "-m", "mnist_doe.design", str(args.design.resolve()))
        params = yaml.safe_load((template / "params.yaml").read_text())
        if args.epochs:
            params["train"]["epochs"] = args.epochs
            for cell in params["doe"]["cells"].values():
                cell.pop("epochs", None)
            (template / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run(template, "git", "-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "-qam", "design")
        serial, parallel = tmp / "serial", tmp / "parallel"
        shutil.copytree(template, serial, symlinks=True)
        shutil.copytree(template, parallel, symlinks=True)
        cells = list(params["doe"]["cells"])

        load_before = os.getloadavg()[0]
        print(f"bench_parallel: serial dvc repro of {len(cells)} cells ...", flush=True)
        serial_s, _ = timed(dvc, serial, "repro")
        print(f"bench_parallel: serial {serial_s:.1f} s; parallel, {args.jobs} workers ...", flush=True)
        parallel_s, parallel_out = timed(run, parallel, sys.executable, "-m", "mnist_doe.parallel",
                                         "--jobs", str(args.jobs))
        load_after = os.getloadavg()[0]
        identical = {name: (serial / name).read_bytes() == (parallel / name).read_bytes() for name in COMPARED}
        doe = json.loads((serial / "metrics/doe.json").read_text())
        timings = {name: json.loads((p / "timings/doe.json").read_text()) for name, p in
                   (("serial", serial), ("parallel", parallel))}
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for p in (serial, parallel):
                shutil.copytree(p, args.keep / p.name, symlinks=True, dirs_exist_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    trained_here = re.findall(r"Running stage '(train@[^']+)'", parallel_out)
    report = {
        "design": str(args.design.resolve().relative_to(ROOT)) if args.design.resolve().is_relative_to(ROOT) else str(args.design),
        "cells": len(cells),
        "epochs": args.epochs or "as the design says",
        "data": "embedded digits: 4,000 labelled training images (3,200 fit, 800 validation), 1,000 test",
        "jobs": args.jobs,
        "serial_seconds": round(serial_s, 1),
        "parallel_seconds": round(parallel_s, 1),
        "speedup": round(serial_s / parallel_s, 2),
        "identical": identical,
        "trained_outside_workers": trained_here,
        "best_cell": doe["best_cell"],
        "best_test_accuracy": doe["cells"][doe["best_cell"]].get("test_accuracy"),
        "train_seconds": {
            cell: {way: timings[way].get(cell, {}).get("train_seconds") for way in ("serial", "parallel")}
            for cell in cells
        },
        "load_average": {"before": round(load_before, 2), "after": round(load_after, 2)},
        "machine": {"kind": kind, "cpu": model, "cores": len(os.sched_getaffinity(0)),
                    "python": platform.python_version()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "parallel.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "parallel.md").write_text(markdown(report))
    print(markdown(report), end="")


def markdown(r: dict) -> str:
    same = all(r["identical"].values())
    lines = [
        f"# Several cells at once: {r['design']}, {r['cells']} cells, {r['jobs']} workers",
        "",
        f"Epochs: {r['epochs']}. Data: {r['data']}. Each run from an empty DVC cache, ingest to report.",
        "",
        "| run | wall (s) | wall (min) |",
        "|---|---:|---:|",
        f"| serial `dvc repro` | {r['serial_seconds']:.1f} | {r['serial_seconds'] / 60:.1f} |",
        f"| `python -m mnist_doe.parallel --jobs {r['jobs']}` | {r['parallel_seconds']:.1f} | "
        f"{r['parallel_seconds'] / 60:.1f} |",
        "",
        f"Speed-up: {r['speedup']:.2f}x. Same metrics/doe.json, metrics/summary.json and dvc.lock: "
        f"{'yes' if same else 'NO: ' + ', '.join(k for k, v in r['identical'].items() if not v)}. "
        f"Best cell {r['best_cell']}, test accuracy {r['best_test_accuracy']}.",
        "",
        "Training time per cell (s, the sum of its epochs; a worker has a share of the cores):",
        "",
        "| cell | serial | parallel |",
        "|---|---:|---:|",
    ]
    for cell, t in r["train_seconds"].items():
        fmt = lambda v: f"{v:.1f}" if isinstance(v, (int, float)) else "-"  # noqa: E731
        lines.append(f"| {cell} | {fmt(t['serial'])} | {fmt(t['parallel'])} |")
    m = r["machine"]
    lines += ["", f"Machine: {m['cpu']} ({m['kind']}), {m['cores']} cores, Python {m['python']}; load average "
              f"{r['load_average']['before']} before, {r['load_average']['after']} after (a shared machine)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
