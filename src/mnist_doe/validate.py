"""Stage validate: quarantine unusable training rows, map labels to class indices, plot EDA.

Every training row is either kept or quarantined with its reason (rows in = rows kept +
rows quarantined); test rows are never dropped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .common import errors, files, params, paths
from .readers.csvfile import MISSING_LABEL, normalise_label
from .common.errors import DataError
from .common.words import plural
from .ingest import SOURCE, SUBMISSION_FORMAT as RAW_SUBMISSION_FORMAT

# column names, ImageIds and test rows of the submission lines, for the submit stage
SUBMISSION_FORMAT = paths.CLEAN_TEST.parent / "submission.json"

QUARANTINE_COLUMNS = ["file", "line", "label", "reason"]
# quarantine reason categories, counted in the metrics
BAD_CELL = "bad cell"
UNDECLARED = "label not declared"
RARE = "rare label"
DUPLICATE = "duplicate"
CATEGORIES = (BAD_CELL, UNDECLARED, RARE, DUPLICATE)
MIN_STRATIFY_ROWS = 2
MAX_PAIRS = 20
SAMPLES_PER_CLASS = 5
_INTEGER = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class Clean:
    """The outcome of validation, ready to be written."""

    train_pixels: np.ndarray
    train_y: np.ndarray
    train_lines: np.ndarray
    test_pixels: np.ndarray
    test_y: np.ndarray
    test_lines: np.ndarray
    classes: list[str]
    side: int
    test_labels_known: bool
    quarantine: pd.DataFrame
    metrics: dict


def class_order(labels) -> list[str]:
    """Distinct labels, numerically sorted when all are integers, else as strings."""
    distinct = sorted({str(label) for label in labels})
    if distinct and all(_INTEGER.match(label) for label in distinct):
        return sorted(distinct, key=lambda label: (int(label), label))
    return distinct


def _image_ids(*blocks: np.ndarray) -> list[np.ndarray]:
    """One integer per row, equal exactly when two rows (of any block) hold the same pixels."""
    stacked = np.ascontiguousarray(np.concatenate(blocks))
    rows = stacked.view(np.dtype((np.void, stacked.shape[1]))).ravel()
    _, ids = np.unique(rows, return_inverse=True)
    return np.split(ids.ravel(), np.cumsum([len(b) for b in blocks])[:-1])


def _cell_reasons(issues: pd.DataFrame) -> dict[int, str]:
    """One reason per training row with bad cells: its first bad cell, and how many more."""
    reasons = {}
    for row, group in issues.groupby("row", sort=True):
        first = group.iloc[0]
        if first["reason"] == MISSING_LABEL:
            cell = MISSING_LABEL
        else:
            cell = f"{first['column']} {str(first['value'])!r} is {first['reason']}"
        more = f" (+{len(group) - 1} more)" if len(group) > 1 else ""
        reasons[int(row)] = f"{BAD_CELL}: {cell}{more}"
    return reasons


def _duplicate_reasons(pixels: np.ndarray, labels: np.ndarray, lines: np.ndarray, rows: np.ndarray, policy: str) -> dict[int, str]:
    """Reasons for the rows (among `rows`) that policy sends to quarantine as exact duplicates."""
    if policy == "keep" or len(rows) == 0:
        return {}
    (image,) = _image_ids(pixels[rows])
    _, label = np.unique(labels[rows], return_inverse=True)
    key = image.astype(np.int64) * (int(label.max()) + 1) + label.ravel()
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    groups: dict[int, list[int]] = {}
    for position in np.flatnonzero(counts[inverse] > 1).tolist():
        groups.setdefault(int(inverse[position]), []).append(position)
    reasons = {}
    for group, positions in groups.items():
        copies = [int(lines[rows[p]]) for p in positions]
        if policy == "drop":
            for position in positions[1:]:
                reasons[int(rows[position])] = f"{DUPLICATE} of line {copies[0]} (dropped)"
        else:
            shown = ", ".join(map(str, copies[:5])) + (", ..." if len(copies) > 5 else "")
            for position in positions:
                reasons[int(rows[position])] = f"{DUPLICATE}: same image and label on lines {shown} (quarantined)"
    return reasons


def _train_test_duplicates(
    train_pixels: np.ndarray, train_lines: np.ndarray, test_pixels: np.ndarray, test_lines: np.ndarray
) -> tuple[int, list[dict]]:
    """How many test rows repeat a training image, and the first few (train line, test line) pairs."""
    train_ids, test_ids = _image_ids(train_pixels, test_pixels)
    first_train: dict[int, int] = {}
    for index, image in enumerate(train_ids.tolist()):
        first_train.setdefault(image, index)
    matches = [(first_train[image], t) for t, image in enumerate(test_ids.tolist()) if image in first_train]
    pairs = [{"train_line": int(train_lines[i]), "test_line": int(test_lines[t])} for i, t in matches[:MAX_PAIRS]]
    return len(matches), pairs


def clean(
    train: dict[str, np.ndarray],
    test: dict[str, np.ndarray],
    issues: pd.DataFrame,
    *,
    train_file: str,
    declared: list,
    min_class_rows: int,
    duplicates: str,
) -> Clean:
    """Quarantine training rows, map labels to classes 0..K-1 and label the test rows.

    `train` holds pixels, labels, lines; `test` holds pixels, lines and maybe labels;
    `issues` is the ingest issues table (row, line, column, value, reason).
    """
    pixels, labels, lines = train["pixels"], train["labels"].astype(str), train["lines"]
    rows_in = len(lines)
    reasons: dict[int, str] = _cell_reasons(issues)

    declared = [normalise_label(label) for label in declared]  # as the readers normalise labels
    if declared:
        allowed = set(declared)
        shown = ", ".join(class_order(allowed))
        for row in np.flatnonzero(~np.isin(labels, list(allowed))):
            reasons.setdefault(int(row), f"{UNDECLARED}: {str(labels[row])!r} is not in data.labels [{shown}]")

    remaining = np.array(sorted(set(range(rows_in)) - set(reasons)), dtype=np.int64)
    for row, reason in _duplicate_reasons(pixels, labels, lines, remaining, duplicates).items():
        reasons.setdefault(row, reason)

    remaining = np.array(sorted(set(range(rows_in)) - set(reasons)), dtype=np.int64)
    counts = pd.Series(labels[remaining]).value_counts()
    for label, count in counts[counts < min_class_rows].items():
        for row in remaining[labels[remaining] == label]:
            reasons[int(row)] = (
                f"{RARE}: {str(label)!r} has {plural(count, 'row')} (validate.min_class_rows is {min_class_rows})"
            )

    kept = np.array(sorted(set(range(rows_in)) - set(reasons)), dtype=np.int64)
    quarantined = np.array(sorted(reasons), dtype=np.int64)
    if len(kept) + len(quarantined) != rows_in:
        raise RuntimeError(f"validate: {rows_in} rows in, {len(kept)} kept + {len(quarantined)} quarantined")

    classes = class_order(declared) if declared else class_order(labels[kept])
    if len(classes) == 1:
        raise DataError(
            f"{train_file}: every one of the {plural(len(kept), 'training row')} left after quarantine has the label "
            f"{classes[0]!r}; a classifier needs at least two classes (is the label in another column?)"
        )
    kept_counts = pd.Series(labels[kept]).value_counts()
    for label in classes:
        count = int(kept_counts.get(label, 0))
        if count < MIN_STRATIFY_ROWS:
            raise DataError(
                f"{train_file}: label {label!r} has {plural(count, 'training row')} left after quarantine; "
                f"a stratified validation split needs at least {MIN_STRATIFY_ROWS} per class"
            )
    if not classes:
        raise DataError(f"{train_file}: no training rows left after quarantine")
    index = {label: i for i, label in enumerate(classes)}
    train_y = np.array([index[label] for label in labels[kept]], dtype=np.int64)

    test_known = "labels" in test
    test_rows = len(test["lines"])
    if test_known:
        test_y = np.array([index.get(str(label), -1) for label in test["labels"]], dtype=np.int64)
    else:
        test_y = np.full(test_rows, -1, dtype=np.int64)

    quarantine = pd.DataFrame(
        {
            "file": train_file,
            "line": lines[quarantined].astype(np.int64),
            "label": labels[quarantined],
            "reason": [reasons[int(row)] for row in quarantined],
        },
        columns=QUARANTINE_COLUMNS,
    )
    by_reason = {category: 0 for category in CATEGORIES}
    for reason in quarantine["reason"]:
        by_reason[next(c for c in CATEGORIES if reason.startswith(c))] += 1
    side = math.isqrt(pixels.shape[1])
    overlap, overlap_pairs = _train_test_duplicates(pixels[kept], lines[kept], test["pixels"], test["lines"])
    metrics = {
        "rows_in": rows_in,
        "rows_kept": len(kept),
        "rows_quarantined": len(quarantined),
        "quarantined_by_reason": by_reason,
        "classes": len(classes),
        "test_rows": test_rows,
        "test_rows_unknown_label": int((test_y == -1).sum()) if test_known else 0,
        "train_test_duplicates": overlap,
        "train_test_duplicate_lines": overlap_pairs,
    }
    return Clean(
        train_pixels=pixels[kept],
        train_y=train_y,
        train_lines=lines[kept],
        test_pixels=test["pixels"],
        test_y=test_y,
        test_lines=test["lines"],
        classes=classes,
        side=side,
        test_labels_known=test_known,
        quarantine=quarantine,
        metrics=metrics,
    )


def plot_eda(result: Clean, out_dir: Path = paths.EDA_DIR) -> None:
    """Class distribution, pixel histogram and a grid of samples per class, as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # the training file's classes, and the test file's beside them when its labels are known
    k = len(result.classes)
    counts = np.bincount(result.train_y, minlength=k)
    known = result.test_y[result.test_y >= 0] if result.test_labels_known else np.array([], dtype=np.int64)
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * k), 4))
    if len(known):
        width = 0.4
        ax.bar(np.arange(k) - width / 2, counts / counts.sum(), width,
               label=f"training ({plural(int(counts.sum()), 'row')})")
        test_counts = np.bincount(known, minlength=k)
        ax.bar(np.arange(k) + width / 2, test_counts / test_counts.sum(), width,
               label=f"test ({plural(int(test_counts.sum()), 'row')})")
        ax.set_ylabel("share of the file's rows")
        ax.legend(fontsize=8)
    else:
        ax.bar(range(k), counts)
        ax.set_ylabel("training rows")
    ax.set_xticks(range(k), result.classes)
    ax.set_xlabel("label")
    ax.set_title("Class distribution (after quarantine)")
    _save(fig, out_dir / "class_distribution.png")

    histogram = np.bincount(result.train_pixels.ravel(), minlength=256)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(np.arange(256), histogram, width=1.0)
    ax.set_yscale("log")
    ax.set_xlabel("pixel value")
    ax.set_ylabel("pixels (log scale)")
    ax.set_title("Pixel value histogram (training rows)")
    _save(fig, out_dir / "pixel_histogram.png")

    # one mosaic image, a row of samples per class, is far quicker to draw than a grid of axes
    side, k = result.side, len(result.classes)
    mosaic = np.zeros((k * (side + 1), SAMPLES_PER_CLASS * (side + 1)), dtype=np.uint8)
    for c in range(k):
        for s, pick in enumerate(np.flatnonzero(result.train_y == c)[:SAMPLES_PER_CLASS]):
            image = result.train_pixels[pick].reshape(side, side)
            mosaic[c * (side + 1) : c * (side + 1) + side, s * (side + 1) : s * (side + 1) + side] = image
    fig, ax = plt.subplots(figsize=(SAMPLES_PER_CLASS * 0.8 + 0.8, k * 0.8 + 0.6))
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=255)
    ax.set_yticks(np.arange(k) * (side + 1) + side / 2 - 0.5, result.classes)
    ax.set_xticks([])
    ax.set_ylabel("label")
    ax.set_title(f"Samples per class (up to {SAMPLES_PER_CLASS})")
    _save(fig, out_dir / "samples.png")


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with files.atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=80, bbox_inches="tight", format="png")
    plt.close(fig)


def submission_format(test_rows: int, path: Path = RAW_SUBMISSION_FORMAT) -> dict:
    """Ingest's submission format, checked against the test rows (every row answered once)."""
    if not Path(path).exists():
        raise DataError(f"{path}: missing; run `dvc repro ingest`")
    fmt = files.read_json(path)
    rows = fmt["rows"]
    if len(rows) != test_rows or sorted(rows) != list(range(test_rows)) or len(fmt["ids"]) != test_rows:
        raise DataError(
            f"{path}: {len(fmt['ids'])} submission lines for {test_rows} test rows; run `dvc repro ingest`"
        )
    return fmt


def read_issues(path: Path = paths.RAW_ISSUES) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"column": str, "value": str, "reason": str}, keep_default_na=False)


def main() -> None:
    p = params.load()
    train = files.load_npz(paths.RAW_TRAIN)
    test = files.load_npz(paths.RAW_TEST)
    source = files.read_json(SOURCE)
    result = clean(
        train,
        test,
        read_issues(),
        train_file=source["train"]["path"],
        declared=p.data.labels,
        min_class_rows=p.validate.min_class_rows,
        duplicates=p.validate.duplicates,
    )
    files.save_npz(paths.CLEAN_TRAIN, pixels=result.train_pixels, y=result.train_y, lines=result.train_lines)
    files.save_npz(paths.CLEAN_TEST, pixels=result.test_pixels, y=result.test_y, lines=result.test_lines)
    files.write_json(
        paths.LABEL_MAP,
        {"classes": result.classes, "side": result.side, "test_labels_known": result.test_labels_known},
    )
    with files.atomic_path(paths.QUARANTINE, ".csv") as tmp:
        result.quarantine.to_csv(tmp, index=False)
    files.write_json(SUBMISSION_FORMAT, submission_format(len(result.test_lines)))
    files.write_json(paths.VALIDATE_METRICS, result.metrics)
    plot_eda(result)
    m = result.metrics
    print(
        f"validate: {plural(m['rows_in'], 'row')} in, {m['rows_kept']} kept, {m['rows_quarantined']} quarantined; "
        f"{plural(m['classes'], 'class', 'classes')}; {plural(m['test_rows'], 'test row')}"
    )


if __name__ == "__main__":
    errors.run_stage("validate", main)
