"""A design's run set beside its source notebook's numbers: one table of every model.

    python -m mnist_doe.design designs/seed-002.yaml
    python bench/seed_tables.py designs/seed-002.yaml --repro --out bench/results/MACHINE/seeds

`--repro` runs `dvc repro` in the project (the current folder, or --project) and times it;
without it the table is written from the outputs of the run already there (give its wall
time with --wall-seconds if it was measured). The run must be of the design: the project's
params.yaml must hold the design's cells and data (else exit 2, one line). The notebook's
numbers come from bench/notebooks.yaml (what the notebook printed, by cell name); a design
without an entry there (e.g. designs/fashion-best.yaml) gets the table of its own numbers.

Writes <design stem>.md and .json into --out: per model, the notebook's validation and test
accuracy and training seconds, ours with their 95% intervals (Wilson) and seconds
(timings/doe.json: the epochs' time, without the process's fixed cost), and ours less the
notebook's in points; a model whose test accuracy is more than one point below the
notebook's is listed with the reason the notebook entry gives, or as unexplained.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NOTEBOOKS = HERE / "notebooks.yaml"
TOLERANCE_POINTS = 1.0  # below the notebook's test accuracy by more than this: to be explained


def fail(message: str) -> None:
    print(f"seed_tables: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def read_json(path: Path) -> dict:
    if not path.is_file():
        fail(f"{path}: missing; run the design first (dvc repro, or --repro)")
    return json.loads(path.read_text())


def check_run(design: dict, params: dict, design_path: Path) -> None:
    """The project's params hold the design's cells and data, so the outputs are its run."""
    for section in ("data", "split", "train", "augment"):
        want, have = design.get(section), params.get(section)
        if want is not None and want != have:
            diff = sorted(k for k in set(want) | set(have or {}) if want.get(k) != (have or {}).get(k))
            fail(f"params.yaml: section {section} is not {design_path}'s (keys {', '.join(diff)}); "
                 f"apply it first: python -m mnist_doe.design {design_path}")
    want, have = design["doe"]["cells"], params["doe"]["cells"]
    if want != have:
        fail(f"params.yaml: doe.cells are not {design_path}'s; apply it first: python -m mnist_doe.design {design_path}")


def points(ours: float | None, theirs: float | None) -> float | None:
    return None if ours is None or theirs is None else round(100 * (ours - theirs), 2)


def rows_of(doe: dict, timings: dict, notebook: dict) -> list[dict]:
    models = notebook.get("models", {})
    rows = []
    for cell, m in doe["cells"].items():
        nb = models.get(cell, {})
        rows.append({
            "cell": cell,
            "notebook_model": nb.get("model"),
            "notebook_val_accuracy": nb.get("val_accuracy"),
            "val_accuracy": m["val_accuracy"],
            "val_accuracy_ci95": m.get("val_accuracy_ci95"),
            "notebook_test_accuracy": nb.get("test_accuracy"),
            "test_accuracy": m.get("test_accuracy"),
            "test_accuracy_ci95": m.get("test_accuracy_ci95"),
            "test_loss": m.get("test_loss"),
            "notebook_test_loss": nb.get("test_loss"),
            "val_points": points(m["val_accuracy"], nb.get("val_accuracy")),
            "test_points": points(m.get("test_accuracy"), nb.get("test_accuracy")),
            "epochs": m.get("epochs"),
            "params": m.get("params"),
            "notebook_seconds": nb.get("seconds"),
            "seconds": timings.get(cell, {}).get("train_seconds"),
            "note": nb.get("note") or notebook.get("below_reason"),
        })
    return rows


def fmt(value, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def with_ci(value, ci) -> str:
    if value is None:
        return ""
    return f"{value:.4f} ({ci[0]:.3f}-{ci[1]:.3f})" if ci else f"{value:.4f}"


def signed(value) -> str:
    return "" if value is None else f"{value:+.2f}"


def markdown(report: dict) -> str:
    m, run, nb = report["machine"], report["run"], report["notebook"]
    lines = [
        f"# {report['design']} beside its notebook",
        "",
        f"Made by `{report['command']}` on {m['cpu']} ({m['vector']}), {m['cores']} cores, "
        f"{m['gpus']} GPU, TensorFlow {m['tensorflow']}, {report['date']}.",
        "",
        f"Ours: {run['fit_rows']:,} fit / {run['val_rows']:,} validation rows, {run['test_rows']:,} test rows "
        f"({'labels known' if run['test_labels_known'] else 'no test labels'}); best cell {run['best_cell']} "
        f"(by {run['selected_by']})"
        + (f"; the whole `dvc repro` took {run['wall_seconds'] / 60:.1f} min ({run['wall_seconds']:.0f} s)"
           if run.get("wall_seconds") else "") + ".",
    ]
    if nb:
        lines += ["", f"Notebook: {nb['data']}; machine: {nb['machine']}; test: {nb['test']}."]
        if nb.get("note"):
            lines += ["", nb["note"]]
    lines += [
        "",
        "Accuracy in fractions with the 95% Wilson interval; points: ours less the notebook's; "
        "seconds: the epochs' training time (ours without the process's fixed cost).",
        "",
        "| cell | notebook's model | val: notebook | val: ours | points | test: notebook | test: ours | points "
        "| test loss: notebook / ours | epochs | seconds: notebook | seconds: ours |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        loss = " / ".join(fmt(v) for v in (r["notebook_test_loss"], r["test_loss"])) if r["notebook_test_loss"] else fmt(r["test_loss"])
        lines.append(
            f"| {r['cell']} | {r['notebook_model'] or ''} | {fmt(r['notebook_val_accuracy'])} "
            f"| {with_ci(r['val_accuracy'], r['val_accuracy_ci95'])} | {signed(r['val_points'])} "
            f"| {fmt(r['notebook_test_accuracy'])} | {with_ci(r['test_accuracy'], r['test_accuracy_ci95'])} "
            f"| {signed(r['test_points'])} | {loss} | {r['epochs'] or ''} "
            f"| {fmt(r['notebook_seconds'], 1)} | {fmt(r['seconds'], 1)} |"
        )
    ens = report.get("ensemble")
    if ens:
        lines += ["", f"Ensemble (mean probabilities) of {', '.join(ens['members'])}: validation "
                      f"{with_ci(ens['val_accuracy'], ens['val_accuracy_ci95'])}, test "
                      f"{with_ci(ens['test_accuracy'], ens['test_accuracy_ci95'])}, test loss {fmt(ens['test_loss'])}."]
    below = [r for r in report["rows"] if r["test_points"] is not None and r["test_points"] < -TOLERANCE_POINTS]
    lines += ["", f"More than {TOLERANCE_POINTS:g} point below the notebook's test accuracy: "
                  + (", ".join(f"{r['cell']} ({r['test_points']:+.2f}: {r['note'] or 'unexplained'})" for r in below)
                     if below else "none") + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("design", type=Path, help="designs/seed-00N.yaml (or any design file)")
    parser.add_argument("--project", type=Path, default=Path("."), help="the project that ran it (default: .)")
    parser.add_argument("--repro", action="store_true", help="run `dvc repro` there first and time it")
    parser.add_argument("--wall-seconds", type=float, help="the measured wall time of the run already there")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "seeds",
                        help="folder for the tables (committed ones: bench/results/<machine>/seeds)")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help="the notebooks' numbers (default: %(default)s)")
    args = parser.parse_args(argv)

    design = yaml.safe_load(args.design.read_text())
    project = args.project.resolve()
    check_run(design, yaml.safe_load((project / "params.yaml").read_text()), args.design)
    wall = args.wall_seconds
    if args.repro:
        start = time.perf_counter()
        done = subprocess.run(["dvc", "repro"], cwd=project)
        if done.returncode != 0:
            fail(f"dvc repro in {project} exited {done.returncode}")
        wall = time.perf_counter() - start

    sys.path.insert(0, str(HERE))
    from bench_train import machine  # noqa: E402  (imports TensorFlow)

    doe = read_json(project / "metrics/doe.json")
    timings = read_json(project / "timings/doe.json")
    validate = read_json(project / "metrics/validate.json")
    stem = args.design.stem
    notebook = (yaml.safe_load(args.notebooks.read_text()) or {}).get(stem, {})
    import numpy as np

    indices = np.load(project / "data/split/indices.npz")
    test_rows = int(np.load(project / "data/clean/test.npz")["pixels"].shape[0])
    run = {
        "fit_rows": int(len(indices["fit_0"])), "val_rows": int(len(indices["val_0"])), "test_rows": test_rows,
        "rows_kept": validate.get("rows_kept"), "test_labels_known": doe.get("test_labels_known"),
        "best_cell": doe["best_cell"], "selected_by": doe.get("selected_by"), "wall_seconds": wall,
    }
    ensemble = doe.get("ensemble") or {}
    report = {
        "design": str(args.design),
        "command": " ".join(["python bench/seed_tables.py", str(args.design)] + (["--repro"] if args.repro else [])
                            + ([f"--wall-seconds {wall:.0f}"] if args.wall_seconds else [])),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "notebook": {k: v for k, v in notebook.items() if k != "models"},
        "run": run,
        "rows": rows_of(doe, timings, notebook),
        "ensemble": {key: ensemble.get(key) for key in ("members", "val_accuracy", "val_accuracy_ci95",
                                                       "test_accuracy", "test_accuracy_ci95", "test_loss")}
        if ensemble else None,
    }
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{stem}.md").write_text(markdown(report))
    print(f"seed_tables: wrote {out / (stem + '.md')} and .json ({len(report['rows'])} models)")


if __name__ == "__main__":
    main()
