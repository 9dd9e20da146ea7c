"""One-at-a-time tuning: `python -m mnist_doe.tune designs/seed-004.yaml`.

A design's `tuning:` section names a starting cell and a list of steps, each sweeping one
knob over a few values from the current best cell:

    tuning:
      start: {family: cnn, layers: 2, nodes: 8, kernel_size: 5}
      steps:
        - {knob: learning_rate, values: [0.0001, 0.001, 0.01]}
        - {knob: batch_size, values: [32, 64, 128]}

A design may hold several such studies by name (`tuning: {mlp: {start, steps}, cnn: {...}}`),
run one after another. The rest of the design is applied to params.yaml first (as `python -m mnist_doe.design`
does). Each step then declares one cell per value (the current best with that value) and
runs as a DVC experiment (`dvc exp run --name <design>-step<k>-<knob>`), so every step is
cached and shows in `dvc exp show`; the winner by validation accuracy (evaluate's best cell)
carries its value into the next step. After every step the path of winners is written to
`tuning/<design>.json` (`tuning/<design>-<study>.json` for named studies), `.md` (per step: each value's train and validation accuracy and
training time) and `.png`; a rerun after an interruption continues from the first step not
recorded there. The last step's results stay in the workspace.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from . import design as design_module
from .common import files, params, paths
from .common.errors import run_stage
from .common.progress import ENV as PROGRESS_ENV, progress, say
from .common.words import plural

TUNING_DIR = Path("tuning")
SECTION = "tuning"


def read_studies(design: dict, source: Path) -> dict[str, dict]:
    """The tuning section as {study name: study}; one unnamed study is named ''."""
    spec = design.get(SECTION)
    if isinstance(spec, dict) and "start" not in spec and spec and all(isinstance(v, dict) for v in spec.values()):
        return {str(name): read_tuning(study, source, f"{SECTION}.{name}") for name, study in spec.items()}
    return {"": read_tuning(spec, source, SECTION)}


def read_tuning(spec, source: Path, label: str = SECTION) -> dict:
    """One study, checked: a start cell and steps of one knob and two or more values."""
    where = f"{source}: '{label}'"
    if not isinstance(spec, dict) or set(spec) - {"start", "steps"} or "start" not in spec or "steps" not in spec:
        raise params.ParamsError(f"{where} must be a mapping with 'start' (a cell) and 'steps' (a list)")
    if not isinstance(spec["start"], dict) or not isinstance(spec["steps"], list) or not spec["steps"]:
        raise params.ParamsError(f"{where}: 'start' is a cell (a mapping) and 'steps' a non-empty list")
    for k, step in enumerate(spec["steps"], 1):
        ok = isinstance(step, dict) and set(step) == {"knob", "values"} and isinstance(step["knob"], str) \
            and isinstance(step["values"], list) and len(step["values"]) >= 2
        if not ok:
            raise params.ParamsError(f"{where}.steps[{k}] must be {{knob: <a cell key>, values: [two or more]}}")
    return spec


def cell_name(step: int, knob: str, value) -> str:
    """A cell name DVC and a shell read safely: step, knob and value in letters, digits, _ and -
    (a decimal point as `p`: 0.001 -> 0p001)."""
    text = "-".join(str(v) for v in value) if isinstance(value, list) else str(value)
    return re.sub(r"[^A-Za-z0-9_-]+", "_", f"s{step}-{knob}-{text}".replace(".", "p"))


def step_cells(start: dict, winners: dict, step: int, knob: str, values: list) -> dict[str, dict]:
    base = {**start, **winners}
    return {cell_name(step, knob, value): {**base, knob: value} for value in values}


def _fingerprint(design: dict) -> str:
    return hashlib.sha256(json.dumps(design, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _dvc(*args: str) -> subprocess.CompletedProcess:
    # the stages' stderr is captured and shown only when a step fails: their bars would crowd that message
    return subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], capture_output=True, text=True,
                          env={**os.environ, PROGRESS_ENV: "0"})


def no_refit(section: dict | None) -> dict:
    """The refit section with the refit off: a step compares cells on validation and submits
    nothing, and the cell a design refits is not among a step's cells."""
    return {**(section or {}), "cell": params.REFIT_OFF}


def run_step(name: str, cells: dict[str, dict]) -> dict:
    """Declare `cells`, run them as the DVC experiment `name`; their rows of metrics/doe.json."""
    params_path = Path(params.PARAMS_FILE)
    current = yaml.safe_load(params_path.read_text())
    doe = {**current.get("doe", {}), "cells": cells, "ensemble": 0}
    text = design_module.apply(params_path.read_text(), {"doe": doe, "refit": no_refit(current.get("refit"))})
    params.parse(yaml.safe_load(text))
    files.write_text(params_path, text)
    _dvc("exp", "remove", name)  # an experiment of this name left by a run that died before its record
    done = _dvc("exp", "run", "--name", name)
    if done.stdout.strip():
        say(done.stdout.rstrip("\n"))
    if done.returncode != 0:
        raise params.ParamsError(f"tune: `dvc exp run --name {name}` failed:\n{done.stderr.strip()[-2000:]}")
    doe_metrics = files.read_json(paths.DOE_METRICS)
    rows = {}
    for cell in cells:
        m = doe_metrics["cells"][cell]
        timing = paths.TIMINGS_DIR / f"{cell}.json"
        rows[cell] = {"train_accuracy": m["train_accuracy"], "val_accuracy": m["val_accuracy"],
                      "train_seconds": files.read_json(timing)["train_seconds"] if timing.exists() else None}
    return {"best_cell": doe_metrics["best_cell"], "rows": rows}


def markdown(record: dict) -> str:
    title = record["design"] + (f", study {record['study']}" if record.get("study") else "")
    lines = [f"# One-at-a-time tuning: {title}", "",
             f"Start: `{json.dumps(record['start'])}`", ""]
    for step in record["steps"]:
        lines += [f"## Step {step['step']}: {step['knob']} (experiment `{step['experiment']}`)", "",
                  "| value | cell | train acc | val acc | training time (s) |", "|---|---|---|---|---|"]
        for value, cell in zip(step["values"], step["cells"]):
            r = step["rows"][cell]
            mark = "**" if cell == step["best_cell"] else ""
            seconds = "-" if r["train_seconds"] is None else f"{r['train_seconds']:.1f}"
            lines.append(f"| {mark}{value}{mark} | {cell} | {r['train_accuracy']:.4f} | {r['val_accuracy']:.4f} | "
                         f"{seconds} |")
        lines += ["", f"Winner: {step['knob']} = {step['winner']}", ""]
    lines += ["## Path of winners", "", f"`{json.dumps(record['winners'])}`", ""]
    return "\n".join(lines)


def plot(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = record["steps"]
    fig, axes = plt.subplots(1, len(steps), figsize=(4.2 * len(steps), 3.8), squeeze=False)
    for ax, step in zip(axes[0], steps):
        labels = [str(v) for v in step["values"]]
        rows = [step["rows"][c] for c in step["cells"]]
        ax.plot(labels, [r["train_accuracy"] for r in rows], "o--", label="train")
        ax.plot(labels, [r["val_accuracy"] for r in rows], "o-", label="validation")
        ax.set(title=f"step {step['step']}: {step['knob']}", xlabel=step["knob"], ylabel="accuracy")
        ax.grid(alpha=0.3)
        seconds = [r["train_seconds"] for r in rows]
        if all(s is not None for s in seconds):
            twin = ax.twinx()
            twin.bar(labels, seconds, alpha=0.15, color="grey")
            twin.set_ylabel("training time (s)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    files.save_png(fig, path)


def tune(design_path: Path, stop_after: int | None = None) -> dict[str, dict]:
    """Run every study of the design in turn; returns {study name: its record}."""
    design = yaml.safe_load(design_path.read_text())
    if not isinstance(design, dict):
        raise params.ParamsError(f"{design_path}: a design is a mapping of params.yaml sections")
    studies = read_studies(design, design_path)
    return {name: tune_study(design_path, design, name, spec, stop_after) for name, spec in studies.items()}


def tune_study(design_path: Path, design: dict, study: str, spec: dict, stop_after: int | None) -> dict:
    stem = f"{design_path.stem}-{study}" if study else design_path.stem
    record_path = TUNING_DIR / f"{stem}.json"
    # what the study's results depend on: its own steps and the design's other sections
    fingerprint = _fingerprint({"sections": {k: v for k, v in design.items() if k != SECTION}, "study": spec})
    record = files.read_json(record_path) if record_path.exists() else None
    if record is None or record.get("fingerprint") != fingerprint:
        if record is not None:
            print(f"tune: {record_path} was written for another version of {design_path}: starting over")
        record = {"design": str(design_path), "study": study, "fingerprint": fingerprint, "start": spec["start"],
                  "winners": {}, "steps": []}
    sections = {k: v for k, v in design.items() if k != SECTION}
    if sections:
        params_path = Path(params.PARAMS_FILE)
        first_cells = step_cells(spec["start"], {}, 1, spec["steps"][0]["knob"], spec["steps"][0]["values"])
        sections = {**sections, "doe": {**sections.get("doe", {}), "cells": first_cells},
                    "refit": no_refit(sections.get("refit"))}
        text = design_module.apply(params_path.read_text(), sections)
        params.parse(yaml.safe_load(text))
        files.write_text(params_path, text)
    steps = spec["steps"]
    finished = sum(len(step["values"]) for step in steps[:len(record["steps"])])
    with progress(total=sum(len(step["values"]) for step in steps), initial=finished, desc=f"tuning {stem}",
                  unit="cell") as bar:
        for k, step in enumerate(steps, 1):
            if k <= len(record["steps"]):
                done = record["steps"][k - 1]
                say(f"tune: step {k} ({step['knob']}) done before: winner {done['winner']}")
                continue
            if stop_after is not None and k > stop_after:
                break
            name = f"{stem}-step{k}-{step['knob']}".replace("_", "-")
            cells = step_cells(spec["start"], record["winners"], k, step["knob"], step["values"])
            bar.set_description(f"tuning {stem}, step {k} of {len(steps)}: {step['knob']}")
            say(f"tune: step {k}: {step['knob']} over {step['values']} "
                f"({plural(len(cells), 'cell')}, experiment {name})")
            result = run_step(name, cells)
            bar.update(len(cells))
            winner = step["values"][list(cells).index(result["best_cell"])]
            record["winners"][step["knob"]] = winner
            record["steps"].append({"step": k, "knob": step["knob"], "values": step["values"], "cells": list(cells),
                                    "experiment": name, "best_cell": result["best_cell"], "winner": winner,
                                    "rows": result["rows"]})
            files.write_json(record_path, record)
            files.write_text(record_path.with_suffix(".md"), markdown(record))
            plot(record, record_path.with_suffix(".png"))
            say(f"tune: step {k}: {step['knob']} = {winner} wins ({result['best_cell']})")
    print(f"tune: winners {json.dumps(record['winners'])}; {record_path.with_suffix('.md')}")
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mnist_doe.tune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("design", type=Path, help="a design file with a 'tuning' section")
    parser.add_argument("--stop-after", type=int, default=None, help="run at most this many steps")
    args = parser.parse_args(argv)
    if not args.design.is_file():
        raise params.ParamsError(f"{args.design}: design file not found")
    tune(args.design, args.stop_after)


if __name__ == "__main__":
    run_stage("tune", main)
