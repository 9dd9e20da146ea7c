import numpy as np
import pytest

from mnist_doe.common import stats


def test_mcnemar_counts_and_exact_p_value():
    # 10 rows only A gets right, 2 only B gets right, 5 both right, 3 both wrong, 2 unknown
    y_true = np.array([0] * 10 + [1] * 2 + [2] * 5 + [0] * 3 + [-1] * 2)
    pred_a = np.array([0] * 10 + [0] * 2 + [2] * 5 + [1] * 3 + [0] * 2)
    pred_b = np.array([1] * 10 + [1] * 2 + [2] * 5 + [2] * 3 + [1] * 2)
    result = stats.mcnemar_exact(y_true, pred_a, pred_b, names=("best", "second"))
    assert (result["b"], result["c"]) == (10, 2)
    # two-sided exact binomial: 2 * P(X <= 2), X ~ Binomial(12, 1/2) = 2 * (1 + 12 + 66) / 4096
    assert result["p_value"] == pytest.approx(158 / 4096)
    assert result["significant"] is True
    assert result["verdict"] == "best is significantly more accurate than second (p = 0.03857 < 0.05)"


def test_mcnemar_is_symmetric_and_handles_no_disagreement():
    y_true = np.array([0, 1, 1, 0, 1])
    pred_a = np.array([0, 1, 0, 0, 0])
    pred_b = np.array([0, 0, 1, 1, 0])
    ab = stats.mcnemar_exact(y_true, pred_a, pred_b)
    ba = stats.mcnemar_exact(y_true, pred_b, pred_a)
    assert (ab["b"], ab["c"]) == (ba["c"], ba["b"]) == (2, 1)
    assert ab["p_value"] == pytest.approx(1.0) and not ab["significant"]
    assert ab["verdict"].startswith("no significant difference between A and B")
    same = stats.mcnemar_exact(y_true, pred_a, pred_a)
    assert (same["b"], same["c"], same["p_value"]) == (0, 0, 1.0)


def test_client_answers_in_original_labels():
    classes = ["A", "B", "K"]
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, -1])
    y_pred = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 1, 1, 0])  # B->K once, K->B twice
    answers = stats.client_answers(y_true, y_pred, classes, target_overall=0.7, target_per_class=0.8)
    assert answers["rows"] == 12
    assert answers["overall"] == pytest.approx(9 / 12)
    assert answers["per_class"] == {"A": 1.0, "B": 0.75, "K": 0.5}
    assert answers["support"] == {"A": 4, "B": 4, "K": 4}
    assert (answers["worst_class"], answers["worst_class_accuracy"]) == ("K", 0.5)
    assert answers["most_common_confusion"] == {"true": "K", "predicted": "B", "count": 2}
    assert answers["passes_overall"] is True
    assert answers["passes_per_class"] == {"A": True, "B": False, "K": False}
    assert answers["below_target"] == ["B", "K"]
    assert answers["passes_targets"] is False


def test_client_answers_ties_follow_class_order_and_absent_classes_are_left_out():
    classes = ["A", "B", "K", "Z"]
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 0, 2, 2])  # A->B once, B->A once; A and B both at 0.5
    answers = stats.client_answers(y_true, y_pred, classes, target_overall=0.5, target_per_class=0.5)
    assert answers["worst_class"] == "A"
    assert answers["most_common_confusion"] == {"true": "A", "predicted": "B", "count": 1}
    assert "Z" not in answers["per_class"]
    assert answers["passes_targets"] is True


def test_client_answers_without_errors():
    answers = stats.client_answers(np.array([0, 1]), np.array([0, 1]), ["A", "B"], 0.96, 0.9)
    assert answers["most_common_confusion"] is None
    assert answers["overall"] == 1.0 and answers["passes_targets"] is True


def test_client_answers_refuses_no_known_rows():
    with pytest.raises(ValueError, match="no rows with a known label"):
        stats.client_answers(np.array([-1, -1]), np.array([0, 1]), ["A", "B"], 0.96, 0.9)


def grid_rows(family="dense", replicates=3, layers_effect=0.05, seed=0):
    rng = np.random.default_rng(seed)
    return [
        {
            "family": family,
            "layers": layers,
            "nodes": nodes,
            "accuracies": list(0.85 + layers_effect * (layers == 5) + rng.normal(0, 0.004, replicates)),
        }
        for layers in (2, 3, 5)
        for nodes in (100, 200)
    ]


def test_anova_detects_a_strong_layers_effect():
    table = stats.two_way_anova(grid_rows())
    assert list(table) == ["dense"]
    dense = table["dense"]
    assert dense["observations"] == 18 and dense["residual_df"] == 12
    assert set(dense["terms"]) == {"layers", "nodes", "layers:nodes"}
    assert dense["terms"]["layers"]["df"] == 2 and dense["terms"]["nodes"]["df"] == 1
    assert dense["terms"]["layers"]["p_value"] < 0.01
    assert dense["terms"]["layers"]["F"] > dense["terms"]["nodes"]["F"]


def test_anova_pools_rows_of_one_design_and_skips_thin_families():
    rows = grid_rows(replicates=1) + grid_rows(replicates=1, seed=1)  # two rows per design: 2 each
    rows += [{"family": "cnn", "layers": 2, "nodes": 32, "accuracies": [0.9, 0.91]}]
    table = stats.two_way_anova(rows)
    assert list(table) == ["dense"] and table["dense"]["observations"] == 12
    assert stats.anova_shortfall([r for r in rows if r["family"] == "cnn"]) == (
        "needs >= 2 levels of layers and of nodes (has 1 x 1)"
    )


def test_anova_returns_none_with_too_few_observations():
    rows = grid_rows(replicates=1)
    assert stats.two_way_anova(rows) is None
    assert stats.anova_shortfall(rows) == (
        "needs >= 2 replicate or fold accuracies per layers x nodes combination (2x100 has 1)"
    )


def test_anova_shortfall_names_a_missing_design_and_flat_replicates():
    rows = [r for r in grid_rows() if (r["layers"], r["nodes"]) != (3, 200)]
    assert stats.two_way_anova(rows) is None
    assert stats.anova_shortfall(rows) == "the layers x nodes grid is incomplete (no cell 3x200)"
    flat = [{**r, "accuracies": [0.9, 0.9]} for r in grid_rows()]
    assert stats.anova_shortfall(flat) == "replicate accuracies never vary, so there is no error term"
    assert stats.two_way_anova(flat) is None


def test_wilson_interval_is_statsmodels_wilson():
    from statsmodels.stats.proportion import proportion_confint

    for hits, n in ((921, 1000), (0, 20), (20, 20), (7, 13)):
        assert stats.wilson_interval(hits, n) == pytest.approx(proportion_confint(hits, n, method="wilson"), abs=1e-12)


def test_mean_interval_is_the_t_interval():
    from scipy import stats as scipy_stats

    values = [0.91, 0.93, 0.92, 0.95, 0.90]
    expected = scipy_stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert stats.mean_interval(values) == pytest.approx(expected, abs=1e-12)
    assert all(np.isnan(stats.mean_interval([0.9])))


def test_best_cell_ties_go_to_the_name_not_the_clock():
    from mnist_doe.evaluate import best_cell

    cells = {"b": {"val_accuracy": 0.9}, "a": {"val_accuracy": 0.9}, "c": {"val_accuracy": 0.8}}
    assert best_cell(cells) == "a"


def test_factor_anova_needs_residuals_and_independent_factors():
    rows = [{"opt": o, "lr": lr, "accuracies": [a]} for (o, lr), a in
            zip([("sgd", 1), ("sgd", 2), ("adam", 1), ("adam", 2)], [0.90, 0.92, 0.80, 0.83])]
    table, reason = stats.factor_anova(rows, ["opt", "lr"])
    assert table is not None and reason is None and table["residual_df"] == 1
    # optimizer moves accuracy by 0.095, the rate by 0.025: the larger effect has the smaller p
    assert table["terms"]["opt"]["p_value"] < table["terms"]["lr"]["p_value"]
    # a factor that always moves with another cannot be told apart from it
    confounded = [{**r, "name": r["opt"]} for r in rows]
    assert stats.factor_anova(confounded, ["opt", "name"])[1].startswith("the design confounds")
    # two cells, two parameters: nothing left to estimate the error
    assert "leave no residual" in stats.factor_anova(rows[:2], ["lr"])[1]
