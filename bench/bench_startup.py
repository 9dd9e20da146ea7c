"""The fixed cost of training one cell: what a train process spends besides its epochs,
against what a notebook spends besides its epochs.

    python bench/bench_startup.py [--repeats 3] [--epochs 3] [--cells dense-5x200,cnn-2x28] [--out bench/results]

- ours: `python -m mnist_doe.train CELL` in a fresh process, in a throwaway copy of the
  project whose earlier stages ran on the embedded digits (`dvc repro augment`); the train
  stage writes each phase of its process to timings/CELL.json (Python's start and the imports
  before the stage's code, params, imports of TensorFlow / Keras / DVCLive, loading and
  hashing the data, building the model, tracing its graphs, the epochs, per-epoch logging
  and backups, predictions, saving, writing the outputs). The same cell is also run as
  `dvc repro --force --single-item train@CELL`, whose wall time less the train process's
  is what DVC adds (its start, hashing, saving the outputs to its cache).
- notebook: a fresh Python process that imports TensorFlow and Keras, builds the cell as
  the notebooks build it (bench/bench_train.py `seed_model`) and fits it with `model.fit`
  for the same epochs on the same rows, then builds and fits it a second time in the same
  process: a notebook pays the imports once per kernel and the building and tracing once
  per model. Tracing: the first epoch's time less the median of the later ones.

Fixed cost = the whole process (or the notebook's model) less the time of its epochs.
Writes startup.json and startup.md into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import CELLS, machine, seed_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvc/config", ".dvc/plots", ".dvcignore", ".gitignore", "src", "data/external"]
GOAL_SECONDS = 5.0  # the goal for ours' fixed cost on a 2-core machine


def env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "TF_CPP_MIN_LOG_LEVEL": "2"}


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), cwd=cwd, env=env(), capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return done


def make_project(dest: Path, cells: list[str], epochs: int) -> None:
    """A copy of the project with the bench's cells, its earlier stages run on the embedded digits."""
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["train"].update(epochs=epochs, patience=0)
    params["doe"]["cells"] = {
        cell: {k: CELLS[cell][k] for k in ("family", "layers", "nodes", "optimizer", "learning_rate", "dropout",
                                            "batch_size")}
        for cell in cells
    }
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(dest, "git", "init", "-q")
    run(dest, "git", "add", "-A")
    run(dest, "git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-q", "-m", "bench")
    run(dest, str(Path(sys.executable).parent / "dvc"), "repro", "augment")


def ours(project: Path, cell: str) -> dict:
    """One train process, timed from outside; its phases as it wrote them."""
    shutil.rmtree(project / ".train_backup", ignore_errors=True)
    began = time.perf_counter()
    run(project, sys.executable, "-m", "mnist_doe.train", cell)
    wall = time.perf_counter() - began
    timing = json.loads((project / "timings" / f"{cell}.json").read_text())
    return {"wall_seconds": round(wall, 3), "process": timing["process"], "fixed_seconds": timing["fixed_seconds"],
            "epoch_seconds": [s for r in timing["per_run"] for s in r["epoch_seconds"]]}


def through_dvc(project: Path, cell: str) -> dict:
    began = time.perf_counter()
    run(project, str(Path(sys.executable).parent / "dvc"), "repro", "--force", "--single-item", f"train@{cell}")
    wall = time.perf_counter() - began
    timing = json.loads((project / "timings" / f"{cell}.json").read_text())
    return {"wall_seconds": round(wall, 3), "train_process_seconds": timing["process"]["total"],
            "dvc_seconds": round(wall - timing["process"]["total"], 3)}


def notebook_worker(cell: str, data_file: Path, epochs: int) -> dict:
    """In this fresh process: the imports, then the cell built and fitted twice, the notebook way."""
    from mnist_doe.common.clock import Laps

    laps = Laps()
    import keras
    import tensorflow  # noqa: F401

    laps.lap("import")
    data = dict(np.load(data_file))
    spec = CELLS[cell]
    shape = {"dense": (-1, 28, 28), "cnn": (-1, 28, 28, 1), "lstm": (-1, 28, 28)}[spec["family"]]
    x, x_val = (data[k].astype(float).reshape(shape) / 255 for k in ("x_fit", "x_val"))
    laps.lap("load")
    models = []
    for _ in range(2):
        ends: list[float] = []

        class EpochClock(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                ends.append(time.perf_counter())

        keras.utils.set_random_seed(42)
        built = time.perf_counter()
        model = seed_model(spec)
        build = time.perf_counter() - built
        began = time.perf_counter()
        model.fit(x, data["y_fit"], batch_size=spec["batch_size"], epochs=epochs,
                  validation_data=(x_val, data["y_val"]), callbacks=[EpochClock()], verbose=0)
        epoch_seconds = np.diff([began, *ends]).tolist()
        steady = statistics.median(epoch_seconds[1:])
        models.append({"build": round(build, 3), "trace": round(epoch_seconds[0] - steady, 3),
                       "epoch_seconds": [round(s, 4) for s in epoch_seconds]})
        laps.lap("models")
    record = laps.record()
    return {"startup": record.get("startup", 0.0), "import": record["import"], "load": record["load"],
            "models": models}


def notebook(project: Path, cell: str, epochs: int) -> dict:
    clean = np.load(project / "data" / "clean" / "train.npz")
    split = np.load(project / "data" / "split" / "indices.npz")
    augmented = np.load(project / "data" / "augmented" / "train.npz")
    data_file = project / "notebook.npz"
    if not data_file.exists():
        np.savez(data_file, x_fit=augmented["pixels"], y_fit=augmented["y"],
                 x_val=clean["pixels"][split["val_0"]], y_val=clean["y"][split["val_0"]])
    began = time.perf_counter()
    done = run(project, sys.executable, __file__, "--worker", cell, str(data_file), "--epochs", str(epochs))
    wall = time.perf_counter() - began
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = round(wall, 3)
    return result


def summarize(runs: dict) -> dict:
    med = lambda values: round(statistics.median(values), 3)  # noqa: E731
    cells = {}
    for cell, r in runs.items():
        phases = sorted({name for o in r["ours"] for name in o["process"]}, key=list(r["ours"][0]["process"]).index)
        ours_phases = {name: med([o["process"].get(name, 0.0) for o in r["ours"]]) for name in phases}
        # a first epoch faster than the median later one (the notebook way's epochs vary) counts no tracing
        first = [n["startup"] + n["import"] + n["models"][0]["build"] + max(0.0, n["models"][0]["trace"])
                 for n in r["notebook"]]
        later = [n["models"][1]["build"] + max(0.0, n["models"][1]["trace"]) for n in r["notebook"]]
        cells[cell] = {
            "ours_phases": ours_phases,
            "ours_fixed_seconds": med([o["fixed_seconds"] for o in r["ours"]]),
            "ours_epochs_seconds": med([sum(o["epoch_seconds"]) for o in r["ours"]]),
            "dvc_seconds": med([d["dvc_seconds"] for d in r["dvc"]]),
            "dvc_wall_seconds": med([d["wall_seconds"] for d in r["dvc"]]),
            "notebook": {
                "startup": med([n["startup"] for n in r["notebook"]]),
                "import": med([n["import"] for n in r["notebook"]]),
                "build_first": med([n["models"][0]["build"] for n in r["notebook"]]),
                "trace_first": med([n["models"][0]["trace"] for n in r["notebook"]]),
                "build_next": med([n["models"][1]["build"] for n in r["notebook"]]),
                "trace_next": med([n["models"][1]["trace"] for n in r["notebook"]]),
                "epochs_seconds": med([sum(n["models"][0]["epoch_seconds"]) for n in r["notebook"]]),
            },
            "notebook_fixed_first_seconds": med(first),
            "notebook_fixed_next_seconds": med(later),
        }
    return cells


PHASE_WORDS = {
    "startup": "Python's start and the imports before the stage's code",
    "params": "reading and checking params.yaml",
    "import": "importing TensorFlow, Keras, DVCLive (scikit-learn for a baseline)",
    "load": "loading the data and hashing it for the resume backup",
    "build": "building and compiling the model",
    "trace": "tracing the training graphs",
    "epochs": "the epochs (training and validation passes)",
    "fit": "per-epoch logging (DVCLive) and resume backups",
    "predict": "predicting training, validation and test rows",
    "save": "saving the model (.keras, summary)",
    "write": "writing predictions, DVCLive's summary and the model's folder",
    "total": "the whole process",
}


def traced(seconds: float) -> str:
    return f"{seconds:.2f}" if seconds >= 0 else f"0 (first epoch {-seconds:.2f} s faster than the median)"


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# The fixed cost of training one cell: a train process against a notebook",
        "",
        f"`python bench/bench_startup.py --repeats {report['repeats']} --epochs {report['epochs']}`: "
        f"{report['train_rows']:,} training rows (the embedded digits' fit rows, augmented), "
        f"{report['val_rows']:,} validation rows, {report['epochs']} epochs, medians of {report['repeats']} "
        "fresh processes per way.",
        "",
        f"Machine: {m['cpu']} ({m['vector']}), {m['cores']} cores, {m['gpus']} GPU; Python {m['python']}, "
        f"NumPy {m['numpy']}, TensorFlow {m['tensorflow']}, Keras {m['keras']}.",
        "",
    ]
    for cell, c in report["cells"].items():
        n = c["notebook"]
        lines += [f"## {cell}", "", "| phase of `python -m mnist_doe.train` | seconds |", "|---|---:|"]
        for name, value in c["ours_phases"].items():
            lines.append(f"| {PHASE_WORDS.get(name, name)} | {value:.2f} |")
        lines += [
            "",
            f"Fixed cost (the process less its epochs): **{c['ours_fixed_seconds']:.2f} s** (goal "
            f"{GOAL_SECONDS:.0f} s); `dvc repro` adds {c['dvc_seconds']:.2f} s to it "
            f"({c['dvc_wall_seconds']:.2f} s for the stage in all).",
            "",
            "| the notebook way | seconds |",
            "|---|---:|",
            f"| Python's start | {n['startup']:.2f} |",
            f"| importing TensorFlow and Keras (once per kernel) | {n['import']:.2f} |",
            f"| building and compiling the first model | {n['build_first']:.2f} |",
            f"| tracing: its first epoch less the median later one | {traced(n['trace_first'])} |",
            f"| building and compiling the next model, same kernel | {n['build_next']:.2f} |",
            f"| tracing the next model | {traced(n['trace_next'])} |",
            f"| its epochs | {n['epochs_seconds']:.2f} |",
            "",
            f"Fixed cost of the notebook's first model {c['notebook_fixed_first_seconds']:.2f} s, of each "
            f"further model {c['notebook_fixed_next_seconds']:.2f} s; ours / notebook's first: "
            f"{c['ours_fixed_seconds'] / c['notebook_fixed_first_seconds']:.2f}x.",
            "",
        ]
    lines.append(f"1-minute load average while it ran: {report['load_average']}. Total bench time: "
                 f"{report['bench_seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit (>= 2)")
    parser.add_argument("--cells", default="dense-5x200,cnn-2x28", help="comma-separated, from bench_train's cells")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--report", type=Path, metavar="JSON", help="write startup.md again from a startup.json")
    parser.add_argument("--worker", nargs=2, metavar=("CELL", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(notebook_worker(args.worker[0], Path(args.worker[1]), args.epochs)))
        return
    if args.report:
        report = json.loads(args.report.read_text())
        report["cells"] = summarize(report["runs"])
        args.report.write_text(json.dumps(report, indent=1) + "\n")
        args.report.with_suffix(".md").write_text(markdown(report))
        return
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the notebook's tracing is its first epoch less a later one)")
    cells = args.cells.split(",")
    unknown = [c for c in cells if c not in CELLS]
    if unknown:
        parser.error(f"unknown cells {unknown}; known: {', '.join(CELLS)}")
    began = time.perf_counter()
    loads = []
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        project = Path(tmp)
        make_project(project, cells, args.epochs)
        augmented = np.load(project / "data" / "augmented" / "train.npz")
        split = np.load(project / "data" / "split" / "indices.npz")
        runs = {cell: {"ours": [], "dvc": [], "notebook": []} for cell in cells}
        for repeat in range(args.repeats):
            for cell in cells:
                ways = [("ours", lambda: ours(project, cell)), ("dvc", lambda: through_dvc(project, cell)),
                        ("notebook", lambda: notebook(project, cell, args.epochs))]
                shift = repeat % len(ways)  # the order of the ways rotates between repeats
                for way, measure in ways[shift:] + ways[:shift]:
                    runs[cell][way].append(measure())
                    loads.append(round(os.getloadavg()[0], 2))
                    print(f"{cell} {way} {repeat + 1}/{args.repeats}: {runs[cell][way][-1]['wall_seconds']:.1f} s",
                          flush=True)
        n_train, n_val = len(augmented["y"]), len(split["val_0"])
    report = {
        "machine": machine(), "repeats": args.repeats, "epochs": args.epochs, "train_rows": n_train,
        "val_rows": n_val, "cells": summarize(runs), "runs": runs,
        "load_average": f"{min(loads)} to {max(loads)}", "bench_seconds": round(time.perf_counter() - began, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "startup.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "startup.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
