"""Where each stage reads and writes, relative to the project root (mirrors dvc.yaml)."""

from pathlib import Path

EMBEDDED_DIR = Path("data/raw/embedded")
EMBEDDED_TRAIN = EMBEDDED_DIR / "train.csv"
EMBEDDED_TEST = EMBEDDED_DIR / "test.csv"
EMBEDDED_TEST_LABELS = EMBEDDED_DIR / "test_labels.csv"
EXTERNAL_DIR = Path("data/external")

RAW_TRAIN = Path("data/raw/train.npz")
RAW_TEST = Path("data/raw/test.npz")
RAW_ISSUES = Path("data/raw/train_issues.csv")

CLEAN_TRAIN = Path("data/clean/train.npz")
CLEAN_TEST = Path("data/clean/test.npz")
LABEL_MAP = Path("data/clean/label_map.json")
QUARANTINE = Path("data/clean/quarantine.csv")
VALIDATE_METRICS = Path("metrics/validate.json")
EDA_DIR = Path("plots/eda")

SPLIT = Path("data/split/indices.npz")
AUGMENTED_TRAIN = Path("data/augmented/train.npz")

MODELS_DIR = Path("models")
PREDICTIONS_DIR = Path("data/predictions")
LIVE_DIR = Path("dvclive")

SUMMARY_METRICS = Path("metrics/summary.json")
DOE_METRICS = Path("metrics/doe.json")
DOE_TABLE = Path("metrics/doe.md")
CURVES_DIR = Path("plots/curves")
CONFUSION_DIR = Path("plots/confusion")
SUBMISSIONS_DIR = Path("submissions")

# the refit for the submission: which cell, for how many epochs; then its model and predictions
REFIT_PLAN = Path("data/refit_plan.json")
REFIT_DIR = MODELS_DIR / "refit"
REFIT_RECORD = REFIT_DIR / "refit.json"
REFIT_PREDICTIONS = REFIT_DIR / "predictions.npz"

# machine-dependent (timings): written beside the results, tracked by neither git nor DVC
TIMINGS_DIR = Path("timings")
