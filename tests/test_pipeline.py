"""End to end: real `dvc repro` of the whole pipeline on tiny real data in a fresh git repo."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from mnist_doe.readers.tiny import write_pair

from project import ROOT, TINY_CELLS, dvc, make_project, run, shared_project, tiny_overrides

pytestmark = pytest.mark.slow

EPOCHS = 2  # the shared run's: tests/test_submit_refit.py refits the best cell for its best of them
STAGES_WITHOUT_TF = ["ingest", "validate", "split", "augment", "evaluate", "confusion", "refit", "submit"]  # refit: off


def commit_all(project, message: str) -> None:
    run(project, "git", "add", "-A")
    run(project, "git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", message)


def build_fashion(path):
    """A Fashion-style pair (labels in both files, header pixel1..), 400 train / 100 test, two
    cells of two epochs, repro'd; what it printed in repro.out."""
    project = make_project(path, tiny_overrides("fashion", epochs=EPOCHS))
    write_pair(project / "data/external", n_train=400, n_test=100, style="fashion")
    (project / "repro.out").write_text(dvc(project, "repro").stdout)
    with open(project / ".git/info/exclude", "a") as exclude:  # not the project's: git status stays clean
        exclude.write("/repro.out\n")


def fashion_run(tmp_path_factory, name: str) -> tuple:
    """A copy of its own of the session's one run of build_fashion, and what that repro printed."""
    project = shared_project(tmp_path_factory, "fashion", build_fashion, tmp_path_factory.mktemp(name) / "project")
    return project, (project / "repro.out").read_text()


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    project, printed = fashion_run(tmp_path_factory, "fashion")
    return project, subprocess.CompletedProcess([], 0, printed, "")


def test_repro_writes_every_output(fashion):
    project, first = fashion
    for cell in TINY_CELLS:
        assert f"Running stage 'train@{cell}'" in first.stdout

    doe = json.loads((project / "metrics/doe.json").read_text())
    assert set(doe["cells"]) == set(TINY_CELLS)
    assert doe["best_cell"] in TINY_CELLS and doe["test_labels_known"] is True
    for cell, m in doe["cells"].items():
        assert {"family", "layers", "nodes", "epochs", "train_accuracy", "val_accuracy", "val_accuracy_ci95",
                "test_accuracy", "test_accuracy_ci95"} <= set(m)
        assert "train_seconds" not in m  # machine-dependent: under timings/, not in what git tracks
        assert m["epochs"] == EPOCHS
        # two epochs on 1,280 real images (with augmentation) already beat chance (0.1)
        assert m["test_accuracy"] > 0.3, (cell, m)
        low, high = m["test_accuracy_ci95"]
        assert low < m["test_accuracy"] < high

    summary = json.loads((project / "metrics/summary.json").read_text())
    best = doe["cells"][doe["best_cell"]]
    assert list(summary)[:3] == ["best_cell", "best_val_accuracy", "best_test_accuracy"]
    assert summary["best_cell"] == doe["best_cell"] and summary["best_test_accuracy"] == best["test_accuracy"]
    assert summary["cells"] == {c: {"val_accuracy": m["val_accuracy"], "test_accuracy": m["test_accuracy"]}
                                for c, m in doe["cells"].items()}
    timing = json.loads((project / "timings/doe.json").read_text())
    assert set(timing) == set(TINY_CELLS) and all(t["train_seconds"] > 0 for t in timing.values())

    test = pd.read_csv(project / "data/external/test.csv")
    for cell in TINY_CELLS:
        sub = pd.read_csv(project / "submissions" / f"{cell}.csv")
        assert list(sub.columns) == ["ImageId", "Label"]
        assert sub["ImageId"].tolist() == list(range(1, 101))
        assert set(sub["Label"]) <= set(range(10))
        # the submission scores exactly the test accuracy evaluate reports
        score = float((sub["Label"].to_numpy() == test["label"].to_numpy()).mean())
        assert score == pytest.approx(doe["cells"][cell]["test_accuracy"], abs=1e-6)

        pairs = pd.read_csv(project / "plots/confusion" / f"{cell}.csv")
        assert list(pairs.columns) == ["actual", "predicted"] and len(pairs) == 100
        assert pairs["actual"].tolist() == test["label"].tolist()
        assert (project / "models" / cell / "model.keras").exists()
        live = json.loads((project / "dvclive" / cell / "metrics.json").read_text())
        assert live["step"] == EPOCHS - 1 and "val_accuracy" in live

    validate = json.loads((project / "metrics/validate.json").read_text())
    assert validate["rows_in"] == 400 == validate["rows_kept"] + validate["rows_quarantined"]
    for png in ("plots/confusion_best.png", "plots/confusion_errors.png", "plots/misclassified.png",
                "plots/learning_curves.png", "timings/time_vs_accuracy.png"):
        assert (project / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| cell |" in (project / "metrics/doe.md").read_text()

    augmented = np.load(project / "data/augmented/train.npz")
    split = np.load(project / "data/split/indices.npz")
    assert augmented["pixels"].dtype == np.uint8
    # copies: 1 per recipe, three recipes: 4x the training split, validation untouched
    assert len(augmented["y"]) == 4 * len(split["train"])
    assert len(split["val_0"]) == 80 and int(split["n_folds"]) == 1


def test_the_seed_table_sets_the_run_beside_the_notebooks_numbers(fashion, tmp_path):
    """bench/seed_tables.py on the run: one row per cell with ours from metrics/doe.json, the
    notebook's (by cell name) beside it, the difference in points; a run of another design is
    refused in one line."""
    project, _ = fashion
    params = yaml.safe_load((project / "params.yaml").read_text())
    design = {k: params[k] for k in ("data", "split", "augment", "train", "doe")}
    design_file = tmp_path / "seed-002.yaml"
    design_file.write_text(yaml.safe_dump(design))
    doe = json.loads((project / "metrics/doe.json").read_text())
    dense, cnn = TINY_CELLS
    notebook = {"model": "Model 0", "val_accuracy": 0.8905, "test_accuracy": 0.8848, "seconds": 109}
    notebooks = tmp_path / "notebooks.yaml"
    notebooks.write_text(yaml.safe_dump({"seed-002": {
        "data": "Fashion-MNIST", "machine": "not stated", "test": "the test file",
        "below_reason": "a tiny run", "models": {dense: notebook}}}))

    out = tmp_path / "tables"
    done = run(ROOT, sys.executable, "bench/seed_tables.py", str(design_file), "--project", str(project),
               "--out", str(out), "--notebooks", str(notebooks), "--wall-seconds", "61")
    assert f"wrote {out / 'seed-002.md'}" in done.stdout
    report = json.loads((out / "seed-002.json").read_text())
    assert [r["cell"] for r in report["rows"]] == list(doe["cells"])
    rows = {r["cell"]: r for r in report["rows"]}
    for cell, row in rows.items():
        ours = doe["cells"][cell]
        assert row["test_accuracy"] == ours["test_accuracy"] and row["val_accuracy"] == ours["val_accuracy"]
    assert rows[cnn]["notebook_test_accuracy"] is None and rows[cnn]["test_points"] is None  # no notebook model
    want = round(100 * (doe["cells"][dense]["test_accuracy"] - notebook["test_accuracy"]), 2)
    assert rows[dense]["notebook_test_accuracy"] == notebook["test_accuracy"]
    assert rows[dense]["test_points"] == pytest.approx(want, abs=0.01)
    assert report["run"]["fit_rows"] + report["run"]["val_rows"] == 400 and report["run"]["test_rows"] == 100
    table = (out / "seed-002.md").read_text()
    assert "took 1.0 min (61 s)" in table and f"best cell {doe['best_cell']}" in table
    assert f"| {dense} | Model 0 | 0.8905 |" in table
    # a tiny run is far below the notebook's: listed as more than one point below, with the reason
    below = "More than 1 point below the notebook's test accuracy: "
    assert (f"{below}{dense} ({want:+.2f}: a tiny run)." in table) == (want < -1)

    # a run of other cells than the design's: one line, exit 2
    design["doe"]["cells"] = {"model-0": design["doe"]["cells"][dense]}
    design_file.write_text(yaml.safe_dump(design))
    refused = run(ROOT, sys.executable, "bench/seed_tables.py", str(design_file), "--project", str(project), check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("seed_tables: error: params.yaml: doe.cells are not ")


def test_the_ensemble_is_scored_and_submitted_like_a_cell(fashion):
    project, _ = fashion
    doe = json.loads((project / "metrics/doe.json").read_text())
    ensemble = doe["ensemble"]
    # doe.ensemble is 3 by default; with two cells both are members, best first
    assert sorted(ensemble["members"]) == sorted(TINY_CELLS) and ensemble["members"][0] == doe["best_cell"]
    mean = np.mean([np.load(project / f"data/predictions/{c}.npz")["test"] for c in TINY_CELLS], axis=0)
    test = pd.read_csv(project / "data/external/test.csv")
    sub = pd.read_csv(project / "submissions/ensemble.csv")
    assert sub["Label"].tolist() == mean.argmax(1).tolist()
    assert float((sub["Label"] == test["label"]).mean()) == pytest.approx(ensemble["test_accuracy"], abs=1e-6)
    summary = json.loads((project / "metrics/summary.json").read_text())
    assert summary["ensemble_test_accuracy"] == ensemble["test_accuracy"]
    best = pd.read_csv(project / "submissions/best.csv")
    assert best.equals(pd.read_csv(project / f"submissions/{doe['best_cell']}.csv"))
    assert "## Ensemble" in (project / "metrics/report.md").read_text()
    for cell, m in doe["cells"].items():  # test loss: the mean cross-entropy of the known test rows
        proba = np.load(project / f"data/predictions/{cell}.npz")["test"]
        expected = -np.mean(np.log(np.clip(proba[np.arange(len(test)), test["label"]], 1e-7, 1)))
        assert m["test_loss"] == pytest.approx(expected, rel=1e-3)


def test_second_repro_is_up_to_date(fashion):
    project, _ = fashion
    again = dvc(project, "repro")
    assert "Running stage" not in again.stdout
    assert "up to date" in again.stdout
    assert "changed" not in dvc(project, "status").stdout


def test_dvc_plots_overlay_every_cell_on_one_chart_per_metric(fashion):
    project, _ = fashion
    shown = json.loads(dvc(project, "plots", "show", "--json").stdout)["data"]
    assert "plots/confusion" in json.dumps(list(shown))
    for title, metric in (("Accuracy per epoch", "accuracy"), ("Loss per epoch", "loss")):
        (spec,) = [e["content"] for e in shown[title] if e["type"] == "vega"]
        assert spec["title"]["text"] == title
        assert spec["encoding"]["color"]["field"] == "cell" and spec["encoding"]["strokeDash"]["field"] == "set"
        assert spec["encoding"]["y"]["field"] == metric
        points = spec["data"]["values"]
        # every cell, training and validation, every epoch, on the one chart
        assert {(p["cell"], p["set"], int(p["epoch"])) for p in points} == {
            (cell, s, e) for cell in TINY_CELLS for s in ("training", "validation") for e in range(1, EPOCHS + 1)
        }


def test_no_stage_but_train_needs_tensorflow(fashion):
    """Each other stage reruns with tensorflow and keras made unimportable, and succeeds (one
    process runs them in turn, as its own __main__ each)."""
    project, _ = fashion
    code = (
        "import sys, runpy; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
        f"for stage in {STAGES_WITHOUT_TF!r}:\n"
        "    print('stage', stage, flush=True)\n"
        "    try:\n"
        "        runpy.run_module('mnist_doe.' + stage, run_name='__main__')\n"
        "    except SystemExit as stop:\n"
        "        if stop.code not in (None, 0):\n"
        "            raise\n"
    )
    done = run(project, "python", "-c", code)
    assert [line for line in done.stdout.splitlines() if line.startswith("stage ")] == [
        f"stage {stage}" for stage in STAGES_WITHOUT_TF]
    # and the train stage itself does import it
    probe = run(project, "python", "-c", "import sys, mnist_doe.train as t; print('tensorflow' in sys.modules)")
    assert probe.stdout.strip() == "False"  # imported lazily, only when a Keras cell trains


@pytest.mark.long  # an end-to-end study of minutes: make test-all, CI
def test_same_params_same_metrics(fashion):
    project, _ = fashion
    before = json.loads((project / "metrics/doe.json").read_text())
    dvc(project, "repro", "--force")
    after = json.loads((project / "metrics/doe.json").read_text())
    assert after == before


@pytest.mark.long  # an end-to-end study of minutes: make test-all, CI
def test_experiments_change_one_knob_and_add_one_cell(fashion):
    project, _ = fashion
    commit_all(project, "baseline run")

    dvc(project, "exp", "run", "-S", f"train.epochs={EPOCHS + 1}")
    diff = json.loads(dvc(project, "metrics", "diff", "--json").stdout)
    # the one DVC metric holds results only: no timing, no design setting, each accuracy once
    assert set(diff) == {"metrics/summary.json"}
    changed = set(diff["metrics/summary.json"])
    assert changed and all(name.startswith(("best_", "ensemble_", "cells.")) for name in changed)
    assert any(name.startswith("cells.") and name.endswith("_accuracy") for name in changed)
    assert not any("seconds" in name or "epochs" in name for name in changed)
    commit_all(project, "one more epoch")

    added = dvc(project, "exp", "run", "-S", "+doe.cells.dense-1x16={family: dense, layers: 1, nodes: 16}")
    assert "Running stage 'train@dense-1x16'" in added.stdout
    for cell in TINY_CELLS:
        assert f"Running stage 'train@{cell}'" not in added.stdout
    doe = json.loads((project / "metrics/doe.json").read_text())
    assert set(doe["cells"]) == set(TINY_CELLS) | {"dense-1x16"}
    assert (project / "submissions/dense-1x16.csv").exists()
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["doe"]["cells"]["dense-1x16"] == {"family": "dense", "layers": 1, "nodes": 16}


@pytest.mark.long  # an end-to-end study of minutes: make test-all, CI
def test_sign_language_test_only_protocol_answers_the_client(tmp_path):
    """Sparse labels (no 9) and a stray 200, validation drawn from the test file only:
    the stray is quarantined, and outputs, report and statistics speak in original labels."""
    cells = {
        "dense-1x32": {"family": "dense", "layers": 1, "nodes": 32, "optimizer": "adam", "learning_rate": 0.003},
        "logreg": {"family": "logreg", "layers": 1, "nodes": 1},
    }
    overrides = tiny_overrides("sign", cells=cells)
    overrides["split"] = {"protocol": "test-only", "val_fraction": 0.5}
    letters = dict(zip([0, 1, 2, 3, 4, 5, 6, 7, 8, 10], "ABCDEFGHIL"))
    overrides["data"]["class_names"] = letters
    project = make_project(tmp_path / "project", overrides)
    write_pair(project / "data/external", n_train=300, n_test=80, style="sign")
    dvc(project, "repro")

    label_map = json.loads((project / "data/clean/label_map.json").read_text())
    assert label_map["classes"] == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "10"]
    quarantine = pd.read_csv(project / "data/clean/quarantine.csv")
    assert quarantine["label"].astype(str).tolist() == ["200"]
    assert quarantine["line"].tolist() == [302]  # header + 300 rows, then the stray
    validate = json.loads((project / "metrics/validate.json").read_text())
    assert validate["rows_in"] == 301 and validate["rows_kept"] == 300

    split = np.load(project / "data/split/indices.npz")
    assert str(split["val_source"]) == "test" and len(split["val_0"]) == 40
    assert len(split["fit_0"]) == 300  # the whole train file trains
    sub = pd.read_csv(project / "submissions/dense-1x32.csv")
    assert len(sub) == 80 and set(sub["Label"]) <= {0, 1, 2, 3, 4, 5, 6, 7, 8, 10}

    stats = json.loads((project / "metrics/stats.json").read_text())
    assert 0.0 <= stats["mcnemar"]["p_value"] <= 1.0
    best = json.loads((project / "metrics/doe.json").read_text())["best_cell"]
    worst = str(stats["cells"][best]["worst_class"])
    assert worst in letters.values()  # answers speak in the class names the params give
    report = (project / "metrics/report.md").read_text()
    assert "McNemar" in report and f"{stats['mcnemar']['p_value']:.3g}" in report
    assert f"- Worst class: {worst}," in report and set(stats["best_per_class"]) == set(letters.values())
    pairs = pd.read_csv(project / f"plots/confusion/{best}.csv")
    assert set(pairs["actual"]) <= set(letters.values()) and len(pairs) == 40
    assert set(sub["Label"]) <= set(letters)  # submissions keep the original labels


@pytest.mark.long  # an end-to-end study of minutes: make test-all, CI
def test_kfold_protocol_reports_mean_and_sd(tmp_path):
    cells = {"dense-1x32": {"family": "dense", "layers": 1, "nodes": 32, "optimizer": "adam", "learning_rate": 0.003}}
    overrides = tiny_overrides("fashion", cells=cells)
    overrides["split"] = {"protocol": "kfold", "folds": 3}
    overrides["augment"] = {"copies": 0}
    project = make_project(tmp_path / "project", overrides)
    write_pair(project / "data/external", n_train=300, n_test=60, style="fashion")
    dvc(project, "repro")

    doe = json.loads((project / "metrics/doe.json").read_text())
    m = doe["cells"]["dense-1x32"]
    assert m["runs"] == 3 and len(m["val_accuracy_runs"]) == 3
    assert m["val_accuracy"] == pytest.approx(np.mean(m["val_accuracy_runs"]), abs=1e-6)
    assert m["val_accuracy_std"] == pytest.approx(np.std(m["val_accuracy_runs"], ddof=1), abs=1e-6)
    assert "±" in (project / "metrics/doe.md").read_text()
    assert len(pd.read_csv(project / "submissions/dense-1x32.csv")) == 60


def test_bad_input_stops_before_work_with_one_line(tmp_path):
    project = make_project(tmp_path / "project", tiny_overrides("fashion"))
    write_pair(project / "data/external", n_train=100, n_test=20, style="fashion")
    (project / "data/external/test.csv").write_text("label,pixel1\n")
    failed = dvc(project, "repro", check=False)
    assert failed.returncode != 0
    assert "ingest: error: data/external/test.csv" in failed.stderr + failed.stdout
    assert not (project / "data/clean").exists()


@pytest.mark.long  # an end-to-end study of minutes: make test-all, CI
def test_replicates_of_a_full_grid_give_a_two_way_anova(tmp_path):
    """Two replicates (seeds 42 and 43) of a 2 x 2 dense grid, run by dvc: the report's
    two-way ANOVA of layers and nodes over the 8 validation accuracies agrees with one
    computed here by hand for a balanced design."""
    cells = {
        f"dense-{layers}x{nodes}": {"family": "dense", "layers": layers, "nodes": nodes,
                                    "optimizer": "adam", "learning_rate": 0.003}
        for layers in (1, 2) for nodes in (8, 32)
    }
    overrides = tiny_overrides("fashion", epochs=2, cells=cells)
    overrides["split"] = {"replicates": 2}
    overrides["augment"] = {"copies": 0}
    project = make_project(tmp_path / "project", overrides)
    write_pair(project / "data/external", n_train=300, n_test=60, style="fashion")
    dvc(project, "repro")

    doe = json.loads((project / "metrics/doe.json").read_text())
    acc = {}  # (layers, nodes) -> the two replicate accuracies
    for name, cell in cells.items():
        m = doe["cells"][name]
        assert m["runs"] == 2
        acc[(cell["layers"], cell["nodes"])] = np.array(m["val_accuracy_runs"])
    assert any(a[0] != a[1] for a in acc.values())  # replicates differ somewhere: an error term

    grand = np.mean(list(acc.values()))
    cell_mean = {k: a.mean() for k, a in acc.items()}
    within = sum(((a - cell_mean[k]) ** 2).sum() for k, a in acc.items())  # df 8 - 4 = 4
    layers_ss = sum(4 * (np.mean([acc[(lay, n)] for n in (8, 32)]) - grand) ** 2 for lay in (1, 2))
    nodes_ss = sum(4 * (np.mean([acc[(lay, n)] for lay in (1, 2)]) - grand) ** 2 for n in (8, 32))

    anova = json.loads((project / "metrics/stats.json").read_text())["anova"]["dense"]
    assert anova["observations"] == 8 and anova["residual_df"] == 4
    terms = anova["terms"]
    assert terms["layers"]["df"] == terms["nodes"]["df"] == 1
    assert terms["layers"]["F"] == pytest.approx(layers_ss / (within / 4), rel=1e-6)
    assert terms["nodes"]["F"] == pytest.approx(nodes_ss / (within / 4), rel=1e-6)
    assert all(0.0 <= t["p_value"] <= 1.0 for t in terms.values())
    report = (project / "metrics/report.md").read_text()
    assert "dense (8 observations, residual df 4):" in report
