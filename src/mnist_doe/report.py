"""report stage: the client's answers, the best-versus-second-best test and the DOE analysis,
as metrics/stats.json (for `dvc metrics`) and metrics/report.md (for people)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import confusion, evaluate  # noqa: E402
from .common import files, params, paths, results, stats  # noqa: E402
from .common.errors import DataError, run_stage  # noqa: E402
from .common.words import plural  # noqa: E402

STATS_METRICS = Path("metrics/stats.json")
REPORT = Path("metrics/report.md")
HEATMAP_DIR = Path("plots/heatmaps")
# report.md lives in metrics/, so its links climb one folder
OTHER_PLOTS = {
    "learning curves": evaluate.LEARNING_CURVES,
    "confusion matrix of the best cell": confusion.BEST_HEATMAP,
    "its errors: the confusion matrix without its diagonal, with the error sums": confusion.BEST_ERRORS,
    "its misclassified images": confusion.MISCLASSIFIED,
}


def _link(path: Path) -> str:
    return f"../{path.as_posix()}"


def second_best(doe: dict) -> str | None:
    """The runner-up by validation accuracy (as evaluate ranks the best), or None for one cell."""
    others = {name: m for name, m in doe["cells"].items() if name != doe["best_cell"]}
    return evaluate.best_cell(others) if others else None


def anova_rows(doe: dict) -> list[dict]:
    """One row per cell: its design and its validation accuracies (per fold or replicate when known)."""
    return [
        {
            "family": m["family"],
            "layers": m["layers"],
            "nodes": m["nodes"],
            "accuracies": m.get("val_accuracy_runs") or [m["val_accuracy"]],
        }
        for m in doe["cells"].values()
    ]


FACTOR_DIR = Path("plots/factors")
LAYERS_X_NODES = {"family", "layers", "nodes"}


def _level(value):
    """A factor's value as one level: a list (a width per layer, say) as `256-512`, one that
    repeats one value (the same rate in every block) as that value, so depth alone does not
    make it a factor."""
    if isinstance(value, (list, tuple)):
        levels = [_level(v) for v in value]
        if levels and all(level == levels[0] for level in levels):
            return levels[0]
        return "-".join(str(level) for level in levels)
    return value


def cell_factors(cell: params.Cell) -> tuple[dict, dict]:
    """Every knob of a cell: (its design and training knobs, shared ones included, as the cell
    trains with them; what it builds beyond those: kernel size, padding, head, ...). A key the
    first gives is not repeated in the second, or it would confound with itself."""
    values = {f.name: getattr(cell, f.name) for f in dataclasses.fields(cell)
              if f.name not in ("name", "train", "net")}
    values.update(dataclasses.asdict(cell.train))
    net = getattr(cell, "net", None)
    built = ({k: v for k, v in dataclasses.asdict(net).items() if k not in values}
             if dataclasses.is_dataclass(net) else {})
    return ({k: _level(v) for k, v in values.items()}, {k: _level(v) for k, v in built.items()})


def varying_factors(cells: dict[str, params.Cell]) -> dict[str, dict[str, object]]:
    """The knobs whose value is not the same in every cell: the design's factors, in the order
    the cells declare them, each as {cell: value}. An architecture key counts when it differs
    between cells of one family (between families, the family itself is the factor)."""
    declared, built = {}, {}
    for name, cell in cells.items():
        declared[name], built[name] = cell_factors(cell)

    def varies(table: dict, key: str, group: list[str]) -> bool:
        return len({repr(table[name].get(key)) for name in group}) > 1

    out = {}
    everyone = list(cells)
    for key in dict.fromkeys(k for values in declared.values() for k in values):
        if varies(declared, key, everyone):
            out[key] = {name: declared[name].get(key) for name in cells}
    by_family: dict[str, list[str]] = {}
    for name, cell in cells.items():
        by_family.setdefault(cell.family, []).append(name)
    for key in dict.fromkeys(k for values in built.values() for k in values):
        if any(varies(built, key, group) for group in by_family.values()):
            out[key] = {name: built[name].get(key) for name in cells}
    return out


def _ordered(levels):
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in levels)
    return sorted(levels) if numeric else sorted(levels, key=str), numeric


def main_effects(doe: dict, factors: dict[str, dict]) -> dict[str, list[dict]]:
    """Per factor, per value: how many cells have it, their mean and best validation accuracy."""
    out = {}
    for factor, by_cell in factors.items():
        levels, _ = _ordered(list(dict.fromkeys(by_cell.values())))
        rows = []
        for level in levels:
            names = [c for c, v in by_cell.items() if v == level]
            accs = [doe["cells"][c]["val_accuracy"] for c in names]
            best = names[int(np.argmax(accs))]
            rows.append({"value": level, "cells": len(names), "mean_val_accuracy": round(float(np.mean(accs)), 6),
                         "best_val_accuracy": round(float(max(accs)), 6), "best_cell": best})
        out[factor] = rows
    return out


def plot_factor(doe: dict, factor: str, by_cell: dict) -> Path:
    """Validation accuracy against one factor: every cell a point with its 95% interval, the
    mean per value a line."""
    levels, numeric = _ordered(list(dict.fromkeys(by_cell.values())))
    position = {level: (level if numeric else i) for i, level in enumerate(levels)}
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for cell, level in by_cell.items():
        m = doe["cells"][cell]
        low, high = m["val_accuracy_ci95"]
        ax.errorbar(position[level], m["val_accuracy"], yerr=[[m["val_accuracy"] - low], [high - m["val_accuracy"]]],
                    fmt="o", color="C0", alpha=0.6, capsize=3)
    means = [np.mean([doe["cells"][c]["val_accuracy"] for c, v in by_cell.items() if v == level]) for level in levels]
    ax.plot([position[level] for level in levels], means, "-", color="C1", label="mean over the cells")
    if numeric and factor in ("learning_rate", "l1", "l2", "C", "alpha") and min(levels) > 0:
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(range(len(levels)), [str(level) for level in levels], rotation=20)
    ax.set(xlabel=factor, ylabel="validation accuracy",
           title=f"Validation accuracy by {factor} (each cell with its 95% interval)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = FACTOR_DIR / f"{factor}.png"
    files.save_png(fig, path)
    return path


def plot_optimizer_by_rate(doe: dict, factors: dict) -> Path:
    """Validation accuracy against the learning rate, a line per optimizer (when both vary)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    optimizers, rates = factors["optimizer"], factors["learning_rate"]
    for opt in sorted(set(optimizers.values())):
        points = sorted((rates[c], doe["cells"][c]["val_accuracy"]) for c, o in optimizers.items() if o == opt)
        ax.plot([r for r, _ in points], [a for _, a in points], "o-", label=opt)
    ax.set_xscale("log")
    ax.set(xlabel="learning rate", ylabel="validation accuracy", title="Optimizer x learning rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = FACTOR_DIR / "optimizer_x_learning_rate.png"
    files.save_png(fig, path)
    return path


def families(doe: dict) -> list[str]:
    return list(dict.fromkeys(m["family"] for m in doe["cells"].values()))


def plot_heatmap(doe: dict, family: str) -> Path:
    """Validation accuracy over layers x nodes for one family; the best cell where a design repeats."""
    cells = [m for m in doe["cells"].values() if m["family"] == family]
    layers = sorted({m["layers"] for m in cells})
    nodes = sorted({m["nodes"] for m in cells})
    grid = np.full((len(layers), len(nodes)), np.nan)
    for m in cells:
        i, j = layers.index(m["layers"]), nodes.index(m["nodes"])
        grid[i, j] = np.fmax(grid[i, j], m["val_accuracy"])
    fig, ax = plt.subplots(figsize=(1.4 * len(nodes) + 2.5, 1.0 * len(layers) + 1.8))
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(nodes)), [str(n) for n in nodes])
    ax.set_yticks(range(len(layers)), [str(n) for n in layers])
    ax.set(xlabel="nodes", ylabel="layers", title=f"{family}: validation accuracy")
    middle = np.nanmean(grid)
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            colour = "black" if value > middle else "white"
            ax.text(j, i, f"{value:.4f}", ha="center", va="center", fontsize=9, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = HEATMAP_DIR / f"{family}.png"
    files.save_png(fig, path)
    return path


def cell_stats(answers: dict) -> dict:
    """The numbers of one cell's client answers that `dvc metrics diff` can compare."""
    out = {
        "overall": round(answers["overall"], 6),
        "worst_class": answers["worst_class"],
        "worst_class_accuracy": round(answers["worst_class_accuracy"], 6),
        "passes_targets": answers["passes_targets"],
        "classes_below_target": len(answers["below_target"]),
    }
    if answers["most_common_confusion"]:
        out["most_common_confusion"] = answers["most_common_confusion"]
    return out


def _acc(value: float) -> str:
    return f"{value:.4f}"


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def family_table(doe: dict, family: str) -> list[str]:
    has_test = doe["test_labels_known"]
    head = ["cell", "layers", "nodes", "epochs", "train acc", "val acc"]
    head += ["test acc (Kaggle score)", "test 95% CI"] if has_test else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ranked = sorted(
        ((name, m) for name, m in doe["cells"].items() if m["family"] == family),
        key=lambda kv: (-kv[1]["val_accuracy"], kv[0]),
    )
    for name, m in ranked:
        val = _acc(m["val_accuracy"])
        if "val_accuracy_std" in m:
            val += f" ± {m['val_accuracy_std']:.4f}"
        row = [
            f"**{name}**" if name == doe["best_cell"] else name,
            str(m["layers"]), str(m["nodes"]), str(m["epochs"]),
            _acc(m["train_accuracy"]), val,
        ]
        if has_test:
            row += [_acc(m["test_accuracy"]), "{:.4f}-{:.4f}".format(*m["test_accuracy_ci95"])] if "test_accuracy" in m else ["-", "-"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def submissions(doe: dict, split: dict, summaries: dict[str, dict], refit: dict | None,
                refit_test_accuracy: float | None = None) -> list[dict]:
    """Each file of submissions/: the model that made it, the rows it trained on, its epochs and
    (test labels known) its test accuracy; best.csv first, then the refit, the ensemble and the
    cells, best first."""
    folds = int(split["n_folds"])
    sizes = sorted({len(split[f"fit_{k}"]) for k in range(folds)})
    fit = (f"{sizes[0]:,}" if len(sizes) == 1 else f"{sizes[0]:,}-{sizes[-1]:,}") + " fit rows"
    fit += f" in each of {folds} folds" if folds > 1 else ""

    def copies(images: int | None, rows: int) -> str:
        return f" ({images:,} images an epoch with augmented copies)" if images and images > rows else ""

    cells = {}
    for name in results.rank({name: m["val_accuracy"] for name, m in doe["cells"].items()}):
        m, runs = doe["cells"][name], int(doe["cells"][name].get("runs", 1))
        made_by = f"cell {name}" + (f", its {runs} runs' mean" if runs > 1 else "")
        cells[name] = {"file": f"{name}.csv", "made_by": made_by, "epochs": str(m["epochs"]),
                       "trained_on": fit + copies(summaries.get(name, {}).get("train_rows"), sizes[-1]),
                       "test_accuracy": m.get("test_accuracy")}
    out = []
    if refit is not None:
        trained_on = (f"{refit['rows']:,} labelled rows: {refit['fit_rows']:,} fit + {refit['validation_rows']:,} "
                      f"validation" + copies(refit["images_per_epoch"], refit["rows"]))
        best_cell = " (the best cell)" if refit["cell"] == doe["best_cell"] else ""
        out.append({"file": "refit.csv", "made_by": f"the refit of {refit['cell']}{best_cell}",
                    "trained_on": trained_on, "epochs": str(refit["epochs"]), "test_accuracy": refit_test_accuracy})
    if "ensemble" in doe:
        e = doe["ensemble"]
        out.append({"file": f"{results.ENSEMBLE}.csv", "made_by": f"the mean of {', '.join(e['members'])}",
                    "trained_on": f"{fit}, each member",
                    "epochs": ", ".join(str(doe["cells"][c]["epochs"]) for c in e["members"]),
                    "test_accuracy": e.get("test_accuracy")})
    out += cells.values()
    source = out[0] if refit is not None else cells[doe["best_cell"]]
    best = {**source, "file": "best.csv", "made_by": f"a copy of {source['file']}: {source['made_by']}"}
    return [best, *out]


def submissions_table(rows: list[dict], has_test: bool) -> list[str]:
    head = ["file", "made by", "trained on", "epochs"] + (["test acc"] if has_test else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        row = [f"`{r['file']}`", r["made_by"], r["trained_on"], r["epochs"]]
        if has_test:
            row.append("-" if r["test_accuracy"] is None else _acc(r["test_accuracy"]))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _confusion_words(pair: dict | None) -> str:
    if not pair:
        return "none (no errors)"
    return f"true {pair['true']} predicted as {pair['predicted']}, {plural(pair['count'], 'time')}"


def markdown(doe: dict, set_name: str, answers: dict[str, dict], mcnemar: dict | None,
             anova: dict | None, anova_reasons: dict[str, str], heatmaps: dict[str, Path],
             per_class: dict[str, dict] | None = None, design: tuple | None = None,
             submitted: tuple[list[dict], dict | None] | None = None) -> str:
    per_class = per_class or {}
    best = doe["best_cell"]
    a = answers[best]
    lines = ["# DOE report", ""]
    lines.append(
        f"Best cell: **{best}**, chosen by {doe['selected_by']}. Accuracies below are judged on the "
        f"{set_name} set ({plural(a['rows'], 'image')} with known labels)."
    )
    if set_name == "validation":
        lines.append(
            "The test labels are unknown, so the validation set that chose the best cell also judges it: "
            "its accuracy is optimistic."
        )

    if submitted is not None:
        rows, refit = submitted
        lines += ["", "## Submissions", ""]
        if refit is None:
            lines.append("`submissions/best.csv` is the best cell's, trained on its fit rows only "
                         "(params.yaml `refit.cell: best` trains it again on every labelled row for the submission).")
        else:
            n = refit["epochs"]
            how = (refit["epochs_rule"] if refit["family"] == "logreg" else
                   f"for {n} epoch{'s' if n != 1 else ''} ({refit['epochs_rule']})")
            lines.append(f"`submissions/best.csv` is the refit of {refit['cell']}: the cell trained again with its "
                         f"knobs and seed on every labelled row ({refit['rows']:,}), without early stopping, {how}. "
                         "With no rows left out it has no validation accuracy of its own.")
        lines += ["", *submissions_table(rows, doe["test_labels_known"])]

    lines += ["", "## Results per family"]
    for family in families(doe):
        lines += ["", f"### {family}", "", *family_table(doe, family), ""]
        if family in heatmaps:
            lines.append(f"![{family}: validation accuracy over layers x nodes]({_link(heatmaps[family])})")

    effects, factor_plots = design or ({}, {})
    if effects:
        lines += ["", "## The design's factors", "",
                  "The knobs that differ between cells, each with the validation accuracy of the cells at "
                  "each of its values (means hide the other factors: read them beside the ANOVA below).", ""]
        for factor, rows in effects.items():
            lines += [f"### {factor}", "", "| value | cells | mean val acc | best val acc | best cell |",
                      "|---|---|---|---|---|"]
            for r in rows:
                lines.append(f"| {r['value']} | {r['cells']} | {_acc(r['mean_val_accuracy'])} | "
                             f"{_acc(r['best_val_accuracy'])} | {r['best_cell']} |")
            lines.append("")
            if factor in factor_plots:
                lines += [f"![validation accuracy by {factor}]({_link(factor_plots[factor])})", ""]
        if "optimizer x learning_rate" in factor_plots:
            lines += ["### optimizer x learning rate", "",
                      f"![optimizer x learning rate]({_link(factor_plots['optimizer x learning_rate'])})", ""]

    if "ensemble" in doe:
        e = doe["ensemble"]
        lines += ["", "## Ensemble", ""]
        text = (f"The mean of the probabilities of the {len(e['members'])} best cells ({', '.join(e['members'])}): "
                f"validation accuracy {_acc(e['val_accuracy'])} (optimistic: the members were chosen on it)")
        if "test_accuracy" in e:
            loss = "unknown (a member diverged)" if e["test_loss"] is None else f"{e['test_loss']:.4f}"
            text += (f", test accuracy {_acc(e['test_accuracy'])} (95% CI {e['test_accuracy_ci95'][0]:.4f}-"
                     f"{e['test_accuracy_ci95'][1]:.4f}), test loss {loss}")
        lines.append(text + ". Its submission: `submissions/ensemble.csv`.")

    present = {title: path for title, path in OTHER_PLOTS.items() if path.exists()}
    if present:
        lines += ["", "## Plots", ""]
        for title, path in present.items():
            lines += [f"### {title[0].upper() + title[1:]}", "", f"![{title}]({_link(path)})", ""]

    lines += ["", "## Best versus second best (exact McNemar test)", ""]
    if mcnemar is None:
        lines.append("Only one cell is declared, so there is no second best to compare with.")
    else:
        first, second = mcnemar["best"], mcnemar["second"]
        lines.append(
            f"On the {set_name} set, {first} alone is right on {plural(mcnemar['b'], 'image')} and {second} alone "
            f"on {mcnemar['c']}. Exact McNemar p-value: {_p(mcnemar['p_value'])}, "
            + ("significant at 0.05: the difference in accuracy is unlikely to be chance."
               if mcnemar["significant"] else
               "not significant at 0.05: the data do not show that one cell is more accurate than the other.")
        )

    two_way = anova is None or "terms" not in anova
    title = ("Do depth and width matter? (two-way ANOVA of validation accuracy)" if two_way else
             "Which factors matter? (ANOVA of validation accuracy on the design's factors, main effects)")
    lines += ["", f"## {title}", ""]
    for family, table in ((anova or {}).items() if two_way else [("every cell", anova)]):
        lines += [f"{family} ({table['observations']} observations, residual df {table['residual_df']}):", ""]
        lines += ["| term | df | F | p-value |", "|---|---|---|---|"]
        for term, t in table["terms"].items():
            f_text = "n/a" if t["F"] is None else f"{t['F']:.3g}"
            lines.append(f"| {term} | {t['df']} | {f_text} | {_p(t['p_value'])} |")
        lines.append("")
    for family, reason in anova_reasons.items():
        lines.append(f"Not computed for {family}: {reason}.")
    if anova_reasons:
        lines.append("")

    lines += [f"## Client answers for the best cell ({best})", ""]
    lines.append(f"- Overall accuracy: {_acc(a['overall'])} (target {a['target_overall']:g}: "
                 f"{_met(a['passes_overall'])})")
    lines.append(f"- Worst class: {a['worst_class']}, accuracy {_acc(a['worst_class_accuracy'])}")
    lines.append(f"- Most common confusion: {_confusion_words(a['most_common_confusion'])}")
    below = ", ".join(a["below_target"]) or "none"
    lines.append(f"- Classes below the per-class target {a['target_per_class']:g}: {below} "
                 f"(per-class target {_met(not a['below_target'])})")
    lines += ["", "| class | images | accuracy (recall) | precision | F1 | target |", "|---|---|---|---|---|---|"]
    for label, acc in a["per_class"].items():
        prf = per_class.get(label, {})
        lines.append(f"| {label} | {a['support'][label]} | {_acc(acc)} | {_acc(prf.get('precision', 0.0))} | "
                     f"{_acc(prf.get('f1', 0.0))} | {_met(a['passes_per_class'][label])} |")

    lines += ["", "## Every cell", "", "| cell | overall | worst class | most common confusion | targets |",
              "|---|---|---|---|---|"]
    for name, c in answers.items():
        lines.append(
            f"| {name} | {_acc(c['overall'])} | {c['worst_class']} ({_acc(c['worst_class_accuracy'])}) | "
            f"{_confusion_words(c['most_common_confusion'])} | {_met(c['passes_targets'])} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    targets = params.load().report
    truth = results.load_truth()
    doe = files.read_json(paths.DOE_METRICS)
    cells = results.declared_cells()
    missing = [cell for cell in cells if cell not in doe["cells"]]
    if missing:
        raise DataError(f"{paths.DOE_METRICS}: no cell '{missing[0]}'; run `dvc repro evaluate` first")
    if doe["best_cell"] not in cells:
        raise DataError(
            f"{paths.DOE_METRICS}: best cell '{doe['best_cell']}' is no longer declared; run `dvc repro evaluate`"
        )
    doe = {**doe, "cells": {cell: doe["cells"][cell] for cell in cells}}

    split, y_true = results.scored_split(truth)
    set_name = "test" if split == "test" else "validation"
    predicted, summaries = {}, {}
    for cell in cells:
        summaries[cell], probas = results.load_predictions(cell)
        proba = probas[split]
        if len(proba) != len(y_true):
            raise DataError(
                f"{paths.PREDICTIONS_DIR / (cell + '.npz')}: '{split}' holds {plural(len(proba), 'row')}, "
                f"the {set_name} set {len(y_true)}; run `dvc repro train@{cell}` again"
            )
        predicted[cell] = proba.argmax(1)
    answers = {
        cell: stats.client_answers(
            y_true, predicted[cell], truth.names, targets.target_overall, targets.target_per_class
        )
        for cell in cells
    }

    best, second = doe["best_cell"], second_best(doe)
    mcnemar = None
    if second is not None:
        test = stats.mcnemar_exact(y_true, predicted[best], predicted[second], names=(best, second))
        mcnemar = {"best": best, "second": second, **{k: test[k] for k in ("b", "c", "p_value", "significant")}}

    declared = params.load().cells
    factors = varying_factors({cell: declared[cell] for cell in cells})
    rows = anova_rows(doe)
    one_width = all(isinstance(m["nodes"], int) for m in doe["cells"].values())  # not a width per layer
    if set(factors) <= LAYERS_X_NODES and one_width:
        # depth and width are the whole design: a two-way ANOVA per family, with interaction
        anova = stats.two_way_anova(rows)
        anova_reasons = {
            family: stats.anova_shortfall([r for r in rows if r["family"] == family])
            for family in families(doe)
            if family not in (anova or {})
        }
    else:
        # other knobs vary: every factor at once, no cells pooled
        for row, cell in zip(rows, doe["cells"]):
            row.update({factor: by_cell[cell] for factor, by_cell in factors.items()})
        anova, reason = stats.factor_anova(rows, list(factors))
        anova_reasons = {"the design": reason} if reason else {}
    for folder in (HEATMAP_DIR, FACTOR_DIR):  # outputs of this stage, even when they hold no plot
        folder.mkdir(parents=True, exist_ok=True)
    heatmaps = {
        family: plot_heatmap(doe, family) for family in families(doe)
        if all(isinstance(m["nodes"], int) for m in doe["cells"].values() if m["family"] == family)
        and len({m["layers"] for m in doe["cells"].values() if m["family"] == family}) > 1
        and len({str(m["nodes"]) for m in doe["cells"].values() if m["family"] == family}) > 1
    }
    effects = main_effects(doe, factors)
    factor_plots = {factor: plot_factor(doe, factor, by_cell) for factor, by_cell in factors.items()}
    if {"optimizer", "learning_rate"} <= set(factors):
        factor_plots["optimizer x learning_rate"] = plot_optimizer_by_rate(doe, factors)

    metrics = {
        "scored_split": split,
        "scored_rows": answers[best]["rows"],
        "best_cell": best,
        "targets": {"overall": targets.target_overall, "per_class": targets.target_per_class},
    }
    if mcnemar:
        metrics["mcnemar"] = mcnemar
    metrics["cells"] = {cell: cell_stats(answers[cell]) for cell in cells}
    refit = results.refit_record(params.load().refit, best)
    refit_accuracy = None
    if refit is not None:
        known = truth.y_test >= 0
        hits = results.refit_test_proba(truth).argmax(1)[known] == truth.y_test[known]
        refit_accuracy = round(float(hits.mean()), 6) if known.any() else None
        metrics["refit"] = {"cell": refit["cell"], "rows": refit["rows"], "epochs": refit["epochs"],
                            **({"test_accuracy": refit_accuracy} if refit_accuracy is not None else {})}
    submitted = submissions(doe, files.load_npz(paths.SPLIT), summaries, refit, refit_accuracy)
    per_class = stats.per_class_scores(y_true, predicted[best], truth.names)
    metrics["best_per_class"] = per_class
    metrics["factors"] = effects
    if anova:
        metrics["anova"] = anova
    files.write_json(STATS_METRICS, metrics)
    files.write_text(REPORT, markdown(doe, set_name, answers, mcnemar, anova, anova_reasons, heatmaps, per_class,
                                      (effects, factor_plots), (submitted, refit)))

    a = answers[best]
    print(f"report: best {best} on the {set_name} set: overall {a['overall']:.4f}, worst class "
          f"{a['worst_class']} ({a['worst_class_accuracy']:.4f}); written to {REPORT}")
    if mcnemar:
        print(f"report: McNemar {best} vs {second}: p = {mcnemar['p_value']:.3g}")


if __name__ == "__main__":
    run_stage("report", main)
