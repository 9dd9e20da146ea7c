"""The statistics a client asks of a DOE: is the best cell really better, where does it fail,
and do depth and width matter. Pure functions over arrays and plain rows; no file access."""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, confusion_matrix
from statsmodels.formula.api import ols
from statsmodels.stats.anova import anova_lm

from .words import plural

ALPHA = 0.05
ANOVA_TERMS = {"C(layers)": "layers", "C(nodes)": "nodes", "C(layers):C(nodes)": "layers:nodes"}


def _known(y_true: np.ndarray, *preds: np.ndarray) -> tuple[np.ndarray, ...]:
    """Drop the rows whose true label is unknown (< 0) from y_true and every prediction."""
    y_true = np.asarray(y_true)
    keep = y_true >= 0
    return (y_true[keep], *(np.asarray(p)[keep] for p in preds))


def mcnemar_exact(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    *,
    names: tuple[str, str] = ("A", "B"),
    alpha: float = ALPHA,
) -> dict:
    """Exact McNemar test of two classifiers judged on the same rows.

    b counts rows A got right and B wrong, c the reverse; under "equally accurate" the b
    discordant wins of A out of b + c follow Binomial(b + c, 1/2), so p is the exact
    two-sided binomial p-value (1.0 when the two never disagree on correctness).
    """
    y_true, pred_a, pred_b = _known(y_true, pred_a, pred_b)
    right_a, right_b = pred_a == y_true, pred_b == y_true
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    p_value = float(binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0
    significant = p_value < alpha
    name_a, name_b = names
    if significant:
        better, worse = (name_a, name_b) if b > c else (name_b, name_a)
        verdict = f"{better} is significantly more accurate than {worse} (p = {p_value:.4g} < {alpha})"
    else:
        verdict = f"no significant difference between {name_a} and {name_b} (p = {p_value:.4g} >= {alpha})"
    return {"b": b, "c": c, "p_value": p_value, "significant": significant, "verdict": verdict}


def client_answers(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: Sequence[str],
    target_overall: float,
    target_per_class: float,
) -> dict:
    """Overall and per-class accuracy, the worst class and the most common confusion, with targets.

    y_true and y_pred hold class indices into `classes`; rows with y_true < 0 are ignored.
    Every label in the answer is the original label text. A class absent from y_true has no
    accuracy and is left out of the per-class answers. Ties go to the class listed first.
    """
    y_true, y_pred = _known(y_true, y_pred)
    classes = [str(c) for c in classes]
    if not len(y_true):
        raise ValueError("client_answers: no rows with a known label")
    matrix = confusion_matrix(y_true, y_pred, labels=range(len(classes)))
    support = matrix.sum(axis=1)
    present = np.flatnonzero(support)
    per_class = {classes[i]: float(matrix[i, i] / support[i]) for i in present}
    worst = min(per_class, key=per_class.get)  # min keeps the first of equals, in class order

    errors = matrix.copy()
    np.fill_diagonal(errors, 0)
    i, j = np.unravel_index(np.argmax(errors), errors.shape)  # row-major: first in class order
    confusion = (
        {"true": classes[i], "predicted": classes[j], "count": int(errors[i, j])} if errors[i, j] else None
    )

    overall = float(accuracy_score(y_true, y_pred))
    passes_per_class = {label: acc >= target_per_class for label, acc in per_class.items()}
    below = [label for label, ok in passes_per_class.items() if not ok]
    return {
        "rows": int(len(y_true)),
        "overall": overall,
        "per_class": per_class,
        "support": {classes[i]: int(support[i]) for i in present},
        "worst_class": worst,
        "worst_class_accuracy": per_class[worst],
        "most_common_confusion": confusion,
        "target_overall": target_overall,
        "target_per_class": target_per_class,
        "passes_overall": overall >= target_overall,
        "passes_per_class": passes_per_class,
        "below_target": below,
        "passes_targets": overall >= target_overall and not below,
    }


def anova_shortfall(rows: Sequence[dict]) -> str | None:
    """Why a two-way ANOVA of one family's rows cannot be run, or None when it can.

    Needs >= 2 levels of layers and of nodes, every layers x nodes combination present,
    >= 2 observations in each, and some spread between replicates.
    """
    cells = _observations(rows)
    layers = sorted({key[0] for key in cells})
    nodes = sorted({key[1] for key in cells})
    if len(layers) < 2 or len(nodes) < 2:
        return f"needs >= 2 levels of layers and of nodes (has {len(layers)} x {len(nodes)})"
    missing = [(lay, nod) for lay in layers for nod in nodes if (lay, nod) not in cells]
    if missing:
        return f"the layers x nodes grid is incomplete (no cell {missing[0][0]}x{missing[0][1]})"
    thin = [key for key, values in cells.items() if len(values) < 2]
    if thin:
        return (
            f"needs >= 2 replicate or fold accuracies per layers x nodes combination "
            f"({thin[0][0]}x{thin[0][1]} has {len(cells[thin[0]])})"
        )
    if all(np.ptp(values) == 0 for values in cells.values()):
        return "replicate accuracies never vary, so there is no error term"
    return None


def two_way_anova(rows: Sequence[dict]) -> dict | None:
    """Two-way ANOVA (type II) of validation accuracy on layers, nodes and their interaction.

    Each row is {family, layers, nodes, accuracies: [per-replicate or per-fold accuracy]};
    rows of one family with equal layers and nodes are pooled. Returns
    {family: {observations, terms: {layers|nodes|layers:nodes: {df, sum_sq, F, p_value}},
    residual_df}} for every family with enough observations (see `anova_shortfall`), or None
    when no family has.
    """
    by_family: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_family[str(row["family"])].append(row)
    tables = {}
    for family, family_rows in by_family.items():
        if anova_shortfall(family_rows) is not None:
            continue
        frame = pd.DataFrame(
            [
                {"layers": lay, "nodes": nod, "acc": float(acc)}
                for (lay, nod), values in _observations(family_rows).items()
                for acc in values
            ]
        )
        table = anova_lm(ols("acc ~ C(layers) * C(nodes)", data=frame).fit(), typ=2)
        tables[family] = {
            "observations": len(frame),
            "terms": {
                name: {
                    "df": int(table.loc[term, "df"]),
                    "sum_sq": _number(table.loc[term, "sum_sq"]),
                    "F": _number(table.loc[term, "F"]),
                    "p_value": _number(table.loc[term, "PR(>F)"]),
                }
                for term, name in ANOVA_TERMS.items()
            },
            "residual_df": int(table.loc["Residual", "df"]),
        }
    return tables or None


def _observations(rows: Sequence[dict]) -> dict[tuple[int, int], list[float]]:
    cells: dict[tuple[int, int], list[float]] = defaultdict(list)
    for row in rows:
        cells[(int(row["layers"]), int(row["nodes"]))].extend(float(a) for a in row["accuracies"])
    return dict(cells)


def _number(value: float) -> float | None:
    """A float for JSON, None where statsmodels gives NaN or infinity."""
    value = float(value)
    return value if math.isfinite(value) else None


def wilson_interval(hits: int, n: int, alpha: float = ALPHA) -> tuple[float, float]:
    """The Wilson score interval of an accuracy of `hits` out of `n` (95% by default)."""
    if n <= 0:
        return (math.nan, math.nan)
    from scipy.stats import norm

    z = float(norm.ppf(1 - alpha / 2))
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values: Sequence[float], alpha: float = ALPHA) -> tuple[float, float]:
    """The t interval of the mean of `values` (folds or replicates; 95% by default)."""
    from scipy.stats import t

    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return (math.nan, math.nan)
    half = float(t.ppf(1 - alpha / 2, len(values) - 1)) * float(values.std(ddof=1)) / math.sqrt(len(values))
    return (float(values.mean()) - half, float(values.mean()) + half)


def per_class_scores(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict[str, dict]:
    """scikit-learn's precision, recall and F1 per class (by name), on the rows with known labels."""
    from sklearn.metrics import precision_recall_fscore_support

    y_true, y_pred = _known(y_true, y_pred)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=range(len(classes)), zero_division=0
    )
    return {
        str(name): {"precision": round(float(p), 6), "recall": round(float(r), 6), "f1": round(float(f), 6),
                    "support": int(s)}
        for name, p, r, f, s in zip(classes, precision, recall, f1, support)
    }


def factor_anova(rows: Sequence[dict], factors: Sequence[str]) -> tuple[dict | None, str | None]:
    """Main-effects ANOVA (type II) of validation accuracy on the design's varying `factors`.

    Each row is one cell: its value of every factor and its accuracies (one per fold or
    replicate). Cells are never pooled: every accuracy is an observation of its own cell's
    factor values, so a knob's effect cannot pass for replicate noise. Returns (table, None),
    or (None, the reason it cannot be computed): too few observations for the parameters, or
    factors that the design confounds (their columns not independent).
    """
    if not factors:
        return None, "no factor varies across the cells"
    frame = pd.DataFrame(
        [{**{f"f{i}": str(row[f]) for i, f in enumerate(factors)}, "acc": float(acc)}
         for row in rows for acc in row["accuracies"]]
    )
    formula = "acc ~ " + " + ".join(f"C(f{i})" for i in range(len(factors)))
    with warnings.catch_warnings():  # a rank-deficient design is refused just below, in words
        warnings.simplefilter("ignore")
        model = ols(formula, data=frame).fit()
    columns = model.model.exog.shape[1]
    rank = int(np.linalg.matrix_rank(model.model.exog))
    if rank < columns:
        return None, f"the design confounds its factors ({', '.join(factors)}): not every effect can be told apart"
    residual_df = len(frame) - rank
    if residual_df < 1:
        return None, (f"{plural(len(frame), 'observation')} for {plural(rank, 'parameter')} leave no residual: "
                      f"add replicates (split.replicates) or folds")
    if float(np.ptp(model.resid)) == 0.0:
        return None, "the accuracies are fitted exactly, so there is no error term"
    table = anova_lm(model, typ=2)
    return {
        "observations": len(frame),
        "terms": {
            factor: {
                "df": int(table.loc[f"C(f{i})", "df"]),
                "sum_sq": _number(table.loc[f"C(f{i})", "sum_sq"]),
                "F": _number(table.loc[f"C(f{i})", "F"]),
                "p_value": _number(table.loc[f"C(f{i})", "PR(>F)"]),
            }
            for i, factor in enumerate(factors)
        },
        "residual_df": residual_df,
    }, None
