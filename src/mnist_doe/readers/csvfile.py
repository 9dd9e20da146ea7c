"""Read Kaggle MNIST-family CSV files by column position and check them by shape.

Digit Recognizer (`label,pixel0..pixel783`, test without label), Fashion-MNIST and
Sign-Language-MNIST (`label,pixel1..pixel784` in both files) differ only in their header
names, so columns are taken by position: a training file is a label then a square number
of pixels; a test file has the same pixels, with or without a label first.

Structural problems raise DataError. Bad cells of a training file are collected as
`Issue`s (the row can be quarantined later); a bad cell of a test file raises, because
every test image needs its submission line.
"""

from __future__ import annotations

import csv
import io
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..common.errors import DataError

PIXEL_MAX = 255
BOM = b"\xef\xbb\xbf"

# Cell problems, as written in the issues file.
EMPTY = "empty"
NAN = "NaN"
NOT_A_NUMBER = "not a number"
OUT_OF_RANGE = "outside 0..255"
NOT_AN_INTEGER = "not an integer"
MISSING_LABEL = "missing label"

_CODES = {1: None, 2: OUT_OF_RANGE, 3: NOT_AN_INTEGER}  # 1: unreadable; the reason comes from its text
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")


class Issue(NamedTuple):
    """One bad cell of a training file."""

    row: int  # index into the parsed arrays
    line: int  # line in the file, 1-based, header is line 1
    column: str
    value: str
    reason: str


@dataclass(frozen=True)
class Table:
    """The rows of one CSV file: pixels (bad cells set to 0), labels if any, file lines."""

    path: Path
    pixels: np.ndarray  # uint8 (N, P)
    labels: np.ndarray | None  # str (N,), stripped; "" where missing
    lines: np.ndarray  # int64 (N,)
    has_header: bool
    issues: list[Issue]

    @property
    def side(self) -> int:
        return math.isqrt(self.pixels.shape[1])

    @property
    def rows(self) -> int:
        return len(self.lines)


@dataclass(frozen=True)
class _Text:
    """A CSV file's bytes cut into lines (trailing blank lines dropped)."""

    path: Path
    raw: bytes
    starts: np.ndarray
    ends: np.ndarray  # exclusive, without the line break

    def line(self, index: int) -> str:
        return self.raw[self.starts[index] : self.ends[index]].decode("utf-8", "replace")

    def fields(self, index: int) -> list[str]:
        line = self.line(index)
        # a quoted field may hold a comma ("T-shirt, top"); the csv module reads quotes as pandas does
        return next(csv.reader([line])) if '"' in line else line.split(",")


def is_square(n: int) -> bool:
    return n >= 1 and math.isqrt(n) ** 2 == n


def is_number(text: str) -> bool:
    return bool(_NUMBER.match(text))


def _scan(path: str | Path) -> _Text:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    raw = path.read_bytes()
    if raw.startswith(BOM):
        raw = raw[len(BOM) :]
    if not raw.strip():
        raise DataError(f"{path}: file is empty")
    data = np.frombuffer(raw, dtype=np.uint8)
    breaks = np.flatnonzero(data == ord("\n"))
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(data)]])
    if starts[-1] == len(data):
        starts, ends = starts[:-1], ends[:-1]
    carriage = (ends > starts) & (data[np.maximum(ends - 1, 0)] == ord("\r"))
    ends = ends - carriage
    blank = ends == starts
    last = int(np.flatnonzero(~blank)[-1])
    starts, ends, blank = starts[: last + 1], ends[: last + 1], blank[: last + 1]
    if blank.any():
        raise DataError(f"{path} line {int(np.argmax(blank)) + 1}: blank line inside the data")
    return _Text(path, raw, starts.astype(np.int64), ends.astype(np.int64))


def _field_counts(text: _Text) -> np.ndarray:
    data = np.frombuffer(text.raw, dtype=np.uint8)
    commas = (data == ord(",")).view(np.uint8)
    # summing uint8 into uint32 is several times faster than into int64
    counts = np.add.reduceat(commas, text.starts, dtype=np.uint32).astype(np.int64) + 1
    # lines with quotes are counted field by field: a quoted comma does not end a field
    quoted = np.unique(np.searchsorted(text.starts, np.flatnonzero(data == ord('"')), side="right") - 1)
    for index in quoted.tolist():
        counts[index] = len(text.fields(index))
    return counts


def _check_field_counts(text: _Text, expected: int) -> None:
    counts = _field_counts(text)
    bad = np.flatnonzero(counts != expected)
    if len(bad):
        first = int(bad[0])
        more = f" ({len(bad)} such lines in all)" if len(bad) > 1 else ""
        raise DataError(
            f"{text.path} line {first + 1}: {counts[first]} fields, expected {expected}{more}"
        )


def _looks_like_header(fields: list[str]) -> bool:
    """A first line is a header when most fields after the first are not numbers, or
    when they count up by one (column numbers, as pandas writes them)."""
    rest = [f.strip().strip('"') for f in fields[1:]] or [fields[0].strip()]
    if sum(not is_number(f) for f in rest) * 2 > len(rest):
        return True
    if len(rest) >= 8 and all(_INTEGER.match(f) for f in rest):
        numbers = np.array([int(f) for f in rest])
        return bool(np.all(np.diff(numbers) == 1))
    return False


def _header(text: _Text) -> tuple[bool, list[str]]:
    fields = text.fields(0)
    has_header = _looks_like_header(fields)
    if has_header and len(text.starts) == 1:
        raise DataError(f"{text.path}: header only, no data rows")
    return has_header, fields


def _column_names(header: list[str] | None, ncols: int, labelled: bool) -> list[str]:
    if header is not None:
        return [f.strip().strip('"') or f"column {j + 1}" for j, f in enumerate(header)]
    pixels = [f"pixel{j}" for j in range(ncols - labelled)]
    return ["label", *pixels] if labelled else pixels


def _read_frame(text: _Text, has_header: bool, labelled: bool) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.DtypeWarning)
        frame = pd.read_csv(
            io.BytesIO(text.raw),
            header=None,
            skiprows=1 if has_header else 0,
            dtype={0: str} if labelled else None,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=True,
            engine="c",
        )
    expected = len(text.starts) - has_header
    if len(frame) != expected:
        raise DataError(
            f"{text.path}: parsed {len(frame)} rows from {expected} data lines "
            "(quoted line breaks are not supported)"
        )
    return frame


def _cell_problems(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Pixel values as uint8 (N, P) with bad cells set to 0, and a code per cell
    (0 good, 1 unreadable, 2 out of range, 3 not an integer).

    Columns that parsed as integers are checked as one block; only columns holding
    decimals, gaps or text are converted and checked one by one.
    """
    pixels = np.zeros(frame.shape, dtype=np.uint8)
    codes = np.zeros(frame.shape, dtype=np.int8)
    integral = np.array([d.kind in "iu" for d in frame.dtypes], dtype=bool)
    if integral.any():
        block = frame.iloc[:, np.flatnonzero(integral)].to_numpy(dtype=np.int64)
        bad = (block < 0) | (block > PIXEL_MAX)
        codes[:, integral] = np.where(bad, 2, 0)
        pixels[:, integral] = np.where(bad, 0, block)
    for j in np.flatnonzero(~integral):
        column = frame.iloc[:, j]
        if column.dtype.kind != "f":
            column = pd.to_numeric(column, errors="coerce")
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        code = np.zeros(len(values), dtype=np.int8)
        with np.errstate(invalid="ignore"):
            code[values != np.round(values)] = 3
            code[(values < 0) | (values > PIXEL_MAX)] = 2
        code[np.isnan(values)] = 1
        codes[:, j] = code
        pixels[:, j] = np.where(code == 0, values, 0).astype(np.uint8)
    return pixels, codes


def _unreadable_reason(value: str) -> str:
    text = value.strip().strip('"').strip()
    if not text:
        return EMPTY
    if text.lower() == "nan":
        return NAN
    return NOT_A_NUMBER


def _cell_issues(
    text: _Text, codes: np.ndarray, first_line: int, names: list[str], offset: int
) -> list[Issue]:
    """Issues for the non-zero codes; `offset` is the file column of codes[:, 0]."""
    rows, cols = np.nonzero(codes)
    issues = []
    cached_row, fields = -1, []
    for row, col in zip(rows.tolist(), cols.tolist()):
        line = row + first_line
        if row != cached_row:
            cached_row, fields = row, text.fields(line - 1)
        value = fields[col + offset]
        reason = _CODES[int(codes[row, col])] or _unreadable_reason(value)
        issues.append(Issue(row, line, names[col + offset], value, reason))
    return issues


def _labels(frame: pd.DataFrame) -> np.ndarray:
    labels = frame.iloc[:, 0].fillna("").astype(str).str.strip().str.strip('"').str.strip()
    return labels.to_numpy(dtype=str)


def _label_issues(labels: np.ndarray, text: _Text, first_line: int, name: str) -> list[Issue]:
    rows = np.flatnonzero(labels == "")
    return [
        Issue(int(r), int(r) + first_line, name, text.fields(int(r) + first_line - 1)[0], MISSING_LABEL)
        for r in rows
    ]


def _check_not_scaled(path: Path, codes: np.ndarray) -> None:
    """Refuse images scaled to 0..1, where nearly every row would hold bad cells."""
    rows = int(np.count_nonzero((codes == 3).any(axis=1)))
    if rows >= 10 and rows * 2 > len(codes):
        raise DataError(
            f"{path}: {rows} of {len(codes)} rows hold fractional pixel values (scaled to 0..1?); "
            f"expected whole numbers 0..{PIXEL_MAX}"
        )


def read_train(path: str | Path) -> Table:
    """Read a training file: a label column, then a square number of pixel columns.

    Bad cells are returned as issues (their pixels set to 0), rows are never dropped.
    """
    text = _scan(path)
    path = text.path
    has_header, first = _header(text)
    ncols = len(first)
    if ncols < 2:
        raise DataError(
            f"{path}: 1 column; a training file needs a label column and then the pixels "
            "(e.g. 785 = label + 28x28)"
        )
    if is_square(ncols):
        side = math.isqrt(ncols)
        raise DataError(
            f"{path}: {ncols} columns make a {side}x{side} image with no label column; "
            "a training file starts with the label (e.g. 785 = label + 28x28)"
        )
    if not is_square(ncols - 1):
        hint = "; is there an extra index column?" if is_square(ncols - 2) else ""
        raise DataError(
            f"{path}: {ncols - 1} pixel columns after the label is not a square image "
            f"(e.g. 784 = 28x28){hint}"
        )
    _check_field_counts(text, ncols)
    frame = _read_frame(text, has_header, labelled=True)
    names = _column_names(first if has_header else None, ncols, labelled=True)
    first_line = 2 if has_header else 1

    pixels, codes = _cell_problems(frame.iloc[:, 1:])
    _check_not_scaled(path, codes)
    labels = _labels(frame)
    # label issues first, so a stable sort by row keeps each row's cells in column order
    issues = _label_issues(labels, text, first_line, names[0])
    issues += _cell_issues(text, codes, first_line, names, offset=1)
    issues.sort(key=lambda issue: issue.row)
    lines = np.arange(len(frame), dtype=np.int64) + first_line
    return Table(path, pixels, labels, lines, has_header, issues)


def read_test(path: str | Path, n_pixels: int) -> Table:
    """Read a test file with `n_pixels` pixel columns, optionally preceded by a label.

    Any bad cell raises DataError naming the line and column.
    """
    text = _scan(path)
    path = text.path
    has_header, first = _header(text)
    ncols = len(first)
    expected = f"expected {n_pixels} (pixels only) or {n_pixels + 1} (label, then pixels)"
    if ncols < n_pixels:
        raise DataError(
            f"{path}: {ncols} columns, fewer than the training file's {n_pixels} pixel columns; {expected}"
        )
    if ncols > n_pixels + 1:
        hint = "; is there an extra index column?" if ncols == n_pixels + 2 else ""
        raise DataError(f"{path}: {ncols} columns, more than the training file has; {expected}{hint}")
    labelled = ncols == n_pixels + 1
    _check_field_counts(text, ncols)
    frame = _read_frame(text, has_header, labelled=labelled)
    names = _column_names(first if has_header else None, ncols, labelled=labelled)
    first_line = 2 if has_header else 1

    pixels, codes = _cell_problems(frame.iloc[:, 1:] if labelled else frame)
    labels = _labels(frame) if labelled else None
    issues = _label_issues(labels, text, first_line, names[0]) if labels is not None else []
    issues += _cell_issues(text, codes, first_line, names, offset=int(labelled))
    if issues:
        bad = min(issues, key=lambda issue: issue.row)
        more = f" ({len(issues)} bad cells in all)" if len(issues) > 1 else ""
        raise DataError(
            f"{path} line {bad.line}, column {bad.column}: {bad.reason} ({bad.value!r}); "
            f"a test row cannot be dropped{more}"
        )
    lines = np.arange(len(frame), dtype=np.int64) + first_line
    return Table(path, pixels, labels, lines, has_header, [])


def read_answers(path: str | Path, n_rows: int) -> np.ndarray:
    """Read an `ImageId,Label` answers file; return the labels (str) in ImageId order.

    The file must hold exactly one row for each ImageId 1..n_rows.
    """
    text = _scan(path)
    path = text.path
    first = text.fields(0)
    has_header = not is_number(first[0].strip().strip('"'))
    if has_header and len(text.starts) == 1:
        raise DataError(f"{path}: header only, no data rows")
    if len(first) != 2:
        raise DataError(f"{path}: {len(first)} columns; an answers file has two, ImageId,Label")
    _check_field_counts(text, 2)
    frame = pd.read_csv(
        io.BytesIO(text.raw),
        header=None,
        skiprows=1 if has_header else 0,
        dtype=str,
        keep_default_na=False,
    )
    names = _column_names(first if has_header else None, 2, labelled=False)
    if not has_header:
        names = ["ImageId", "Label"]
    first_line = 2 if has_header else 1
    ids_text = frame.iloc[:, 0].astype(str).str.strip().str.strip('"')
    labels = frame.iloc[:, 1].astype(str).str.strip().str.strip('"').str.strip().to_numpy(dtype=str)
    whole = ids_text.str.fullmatch(r"[+-]?\d+").to_numpy(dtype=bool)
    if not whole.all():
        row = int(np.argmin(whole))
        raise DataError(
            f"{path} line {row + first_line}, column {names[0]}: {ids_text.iloc[row]!r} is not a whole number"
        )
    missing = np.flatnonzero(labels == "")
    if len(missing):
        raise DataError(f"{path} line {int(missing[0]) + first_line}, column {names[1]}: {MISSING_LABEL}")
    if len(frame) != n_rows:
        raise DataError(
            f"{path}: {len(frame)} answers for {n_rows} test images; "
            f"expected one row per test image (ImageId 1..{n_rows})"
        )
    ids = ids_text.astype(np.int64).to_numpy()
    outside = np.flatnonzero((ids < 1) | (ids > n_rows))
    if len(outside):
        row = int(outside[0])
        raise DataError(f"{path} line {row + first_line}: ImageId {ids[row]} is outside 1..{n_rows}")
    if len(np.unique(ids)) < len(ids):
        seen: dict[int, int] = {}
        for row, image_id in enumerate(ids.tolist()):
            if image_id in seen:
                raise DataError(
                    f"{path} line {row + first_line}: ImageId {image_id} repeats line {seen[image_id] + first_line}"
                )
            seen[image_id] = row
    answers = np.empty(n_rows, dtype=labels.dtype)
    answers[ids - 1] = labels
    return answers
