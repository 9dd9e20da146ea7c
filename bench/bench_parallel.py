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
import resource
import shutil
import statistics
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


def timed(command, *args) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system, of every process the command ran) and output."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    out = command(*args).stdout
    wall = time.perf_counter() - began
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return wall, cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--design", type=Path, default=ROOT / "designs/seed-000.yaml")
    parser.add_argument("--epochs", type=int, help="override the design's train.epochs (and every cell's)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--kind", help="the machine kind's folder under bench/results/ (default: from the CPU)")
    parser.add_argument("--repeats", type=int, default=2, help="pairs of runs, each pair from an empty cache")
    parser.add_argument("--keep", type=Path, help="keep the projects under this folder")
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
        cells = list(params["doe"]["cells"])
        command = {"serial": lambda path: dvc(path, "repro"),
                   "parallel": lambda path: run(path, sys.executable, "-m", "mnist_doe.parallel", "--jobs", str(args.jobs))}
        reference, runs, first = None, [], {}
        for repeat in range(1, args.repeats + 1):
            # alternate which way goes first, so neither always meets the same machine state
            order = ("serial", "parallel") if repeat % 2 else ("parallel", "serial")
            pair = {}
            for way in order:
                path = tmp / f"{way}-{repeat}"
                shutil.copytree(template, path, symlinks=True)
                load = os.getloadavg()[0]
                print(f"bench_parallel: repeat {repeat}, {way}: {len(cells)} cells ...", flush=True)
                seconds, cpu_seconds, out = timed(command[way], path)
                print(f"bench_parallel: repeat {repeat}, {way}: {seconds:.1f} s ({cpu_seconds:.1f} CPU s)", flush=True)
                results = {name: (path / name).read_bytes() for name in COMPARED}
                reference = reference or results
                pair[way] = {"seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
                             "load_average_before": round(load, 2),
                             "identical_to_first_serial": {n: results[n] == reference[n] for n in COMPARED},
                             "trained_outside_workers": re.findall(r"Running stage '(train@[^']+)'", out)
                             if way == "parallel" else []}
                if repeat == 1:
                    first[way] = json.loads((path / "timings/doe.json").read_text())
                    first["doe"] = first.get("doe") or json.loads((path / "metrics/doe.json").read_text())
                if args.keep:
                    shutil.copytree(path, args.keep / path.name, symlinks=True, dirs_exist_ok=True)
                shutil.rmtree(path)
            runs.append({"repeat": repeat, "order": list(order), **pair,
                         "speedup": round(pair["serial"]["seconds"] / pair["parallel"]["seconds"], 2)})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    doe = first["doe"]
    serial_s = statistics.median(r["serial"]["seconds"] for r in runs)
    parallel_s = statistics.median(r["parallel"]["seconds"] for r in runs)
    identical = {name: all(r[way]["identical_to_first_serial"][name] for r in runs for way in ("serial", "parallel"))
                 for name in COMPARED}
    report = {
        "design": str(args.design.resolve().relative_to(ROOT)) if args.design.resolve().is_relative_to(ROOT) else str(args.design),
        "cells": len(cells),
        "epochs": args.epochs or "as the design says",
        "data": "embedded digits: 4,000 labelled training images (3,200 fit, 800 validation), 1,000 test",
        "jobs": args.jobs,
        "repeats": args.repeats,
        "serial_seconds": round(serial_s, 1),  # medians over the repeats
        "parallel_seconds": round(parallel_s, 1),
        "speedup": round(statistics.median(r["speedup"] for r in runs), 2),  # median of the paired ratios
        "identical": identical,  # every run's files against the first serial run's
        "runs": runs,
        "best_cell": doe["best_cell"],
        "best_test_accuracy": doe["cells"][doe["best_cell"]].get("test_accuracy"),
        "train_seconds": {
            cell: {way: first[way].get(cell, {}).get("train_seconds") for way in ("serial", "parallel")}
            for cell in cells
        },
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
        f"| run | wall (s), median of {r['repeats']} | wall (min) |",
        "|---|---:|---:|",
        f"| serial `dvc repro` | {r['serial_seconds']:.1f} | {r['serial_seconds'] / 60:.1f} |",
        f"| `python -m mnist_doe.parallel --jobs {r['jobs']}` | {r['parallel_seconds']:.1f} | "
        f"{r['parallel_seconds'] / 60:.1f} |",
        "",
        f"Speed-up: {r['speedup']:.2f}x (median of the paired ratios). Every run's metrics/doe.json, "
        f"metrics/summary.json and dvc.lock the same as the first serial run's: "
        f"{'yes' if same else 'NO: ' + ', '.join(k for k, v in r['identical'].items() if not v)}. "
        f"Best cell {r['best_cell']}, test accuracy {r['best_test_accuracy']}.",
        "",
        "| repeat | order | serial (s) | parallel (s) | speed-up | CPU s serial, parallel | "
        "load average before (serial, parallel) |",
        "|---|---|---:|---:|---:|---|---|",
        *[f"| {x['repeat']} | {' then '.join(x['order'])} | {x['serial']['seconds']:.1f} | "
          f"{x['parallel']['seconds']:.1f} | {x['speedup']:.2f}x | "
          f"{x['serial']['cpu_seconds']:.0f}, {x['parallel']['cpu_seconds']:.0f} | "
          f"{x['serial']['load_average_before']}, {x['parallel']['load_average_before']} |" for x in r["runs"]],
        "",
        "Training time per cell in repeat 1 (s, the sum of its epochs; a worker has a share of the cores):",
        "",
        "| cell | serial | parallel |",
        "|---|---:|---:|",
    ]
    for cell, t in r["train_seconds"].items():
        fmt = lambda v: f"{v:.1f}" if isinstance(v, (int, float)) else "-"  # noqa: E731
        lines.append(f"| {cell} | {fmt(t['serial'])} | {fmt(t['parallel'])} |")
    m = r["machine"]
    lines += ["", f"Machine: {m['cpu']} ({m['kind']}), {m['cores']} cores, Python {m['python']}, shared with "
              "other work (the load averages above)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
