"""Read Kaggle MNIST-family CSV files and check them by shape and by their header names.

Digit Recognizer (`label,pixel0..pixel783`, test without label), Fashion-MNIST and
Sign-Language-MNIST (`label,pixel1..pixel784` in both files) differ only in their header
names. A training file is a label column, then a square number of pixels (the label may
instead be the last column when the header names it `label`; an `ImageId` column may come
first). A test file holds the same pixels, preceded by nothing, a label, an ImageId, or an
ImageId and a label: its layout is read from its header names when it has a header, else
from its first column's values against the training file; a layout that cannot be told
is an error that shows the columns.

A file may be plain CSV text (UTF-8, UTF-16 with its byte order mark, or Windows-1252 as
Excel writes it), gzip-compressed, or a zip archive holding one CSV; `kaggle_zip` finds
train.csv, test.csv and sample_submission.csv inside a Kaggle competition zip.

Structural problems raise DataError. Bad cells of a training file are collected as
`Issue`s (the row can be quarantined later); a bad cell of a test file raises, because
every test image needs its submission line. Labels are normalised as they are read
(`normalise_label`: `5`, `5.0` and `05` are one label; text is kept as text).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path, PurePosixPath
from typing import NamedTuple, Union

import numpy as np
import pandas as pd

from ..common.errors import DataError
from ..common.progress import progress
from ..common.words import plural

PIXEL_MAX = 255
BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
# byte order marks, longest first: UTF-32 LE starts with UTF-16 LE's mark
UNICODE_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le", "UTF-32"),
    (b"\x00\x00\xfe\xff", "utf-32-be", "UTF-32"),
    (b"\xff\xfe", "utf-16-le", "UTF-16"),
    (b"\xfe\xff", "utf-16-be", "UTF-16"),
)
# files that are not CSV text, by their first bytes
NOT_CSV = (
    (b"BZh", "a bzip2-compressed file; decompress it first (bunzip2) or gzip it"),
    (b"\xfd7zXZ\x00", "an xz-compressed file; decompress it first (unxz) or gzip it"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive; extract the CSV from it"),
    (b"Rar!\x1a\x07", "a RAR archive; extract the CSV from it"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook (or another OLE document); save it as CSV"),
    (b"PAR1", "a Parquet file, not CSV"),
    (b"\x93NUMPY", "a NumPy array file, not CSV"),
    (b"\x00\x00\x08\x03", "an IDX image file; convert it with python -m mnist_doe.readers.idx"),
    (b"\x00\x00\x08\x01", "an IDX label file; convert it with python -m mnist_doe.readers.idx"),
)
MAX_LISTED = 8  # archive members named in a message
ROWS_PER_STEP = 8192  # rows parsed and checked at a time, a progress update each (as fast as one step: measured)

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
# cells that stand for a missing value: never a column name
_MISSING_MARKS = {"nan", "na", "n/a", "null", "none", "inf", "+inf", "-inf", "infinity", "-", "?"}
# header names, lower-cased with everything but letters and digits dropped
ID_NAMES = {"imageid", "id", "imgid"}
LABEL_NAMES = {"label", "labels", "class", "target"}
_PIXEL_NAME = re.compile(r"^(pixel|px|p|col|column)?[ _-]?\d+$", re.IGNORECASE)


class Issue(NamedTuple):
    """One bad cell of a training file."""

    row: int  # index into the parsed arrays
    line: int  # line in the file, 1-based, header is line 1
    column: str
    value: str
    reason: str


@dataclass(frozen=True)
class Source:
    """A CSV file on disk, or the CSV `member` of the zip archive at `path`."""

    path: Path
    member: str | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)


PathLike = Union[str, Path, Source]


def as_source(path: PathLike) -> Source:
    return path if isinstance(path, Source) else Source(Path(path))


@dataclass(frozen=True)
class Table:
    """The rows of one CSV file: pixels (bad cells set to 0), labels and ImageIds if any, file lines."""

    path: str  # the file as messages name it (`archive.zip:member.csv` for a zip member)
    pixels: np.ndarray  # uint8 (N, P)
    labels: np.ndarray | None  # str (N,), normalised; "" where missing
    lines: np.ndarray  # int64 (N,)
    has_header: bool
    issues: list[Issue]
    ids: np.ndarray | None = None  # str (N,) of an ImageId column, normalised
    columns: list[str] = field(default_factory=list)  # every column's name (header, or as the reader names them)
    label_column: int | None = None  # file column of the labels
    id_column: int | None = None  # file column of the ImageIds
    encoding: str = "utf-8"

    @property
    def side(self) -> int:
        return math.isqrt(self.pixels.shape[1])

    @property
    def rows(self) -> int:
        return len(self.lines)

    @property
    def layout(self) -> str:
        """The columns in words, e.g. 'ImageId, label, 784 pixels'."""
        label_last = self.label_column is not None and self.label_column > 0 and self.label_column == len(self.columns) - 1
        parts = ["ImageId"] if self.id_column is not None else []
        parts += ["label"] if self.label_column is not None and not label_last else []
        parts.append(plural(self.pixels.shape[1], "pixel"))
        parts += ["label"] if label_last else []
        return ", ".join(parts)

    @property
    def label_name(self) -> str | None:
        return self.columns[self.label_column] if self.label_column is not None and self.has_header else None


@dataclass(frozen=True)
class _Text:
    """A CSV file's text as UTF-8 bytes cut into lines (trailing blank lines dropped)."""

    path: str
    raw: bytes
    starts: np.ndarray
    ends: np.ndarray  # exclusive, without the line break
    encoding: str = "utf-8"

    def line(self, index: int) -> str:
        return self.raw[self.starts[index] : self.ends[index]].decode("utf-8", "replace")

    def fields(self, index: int) -> list[str]:
        line = self.line(index)
        if '"' not in line:
            return line.split(",")
        # a quoted field may hold a comma ("T-shirt, top"); the csv module reads quotes as pandas does
        limit = csv.field_size_limit()
        try:
            if len(line) >= limit:  # one line's field is never longer than the line
                csv.field_size_limit(len(line) + 1)
            return next(csv.reader([line]))
        except csv.Error as err:
            raise DataError(f"{self.path} line {index + 1}: cannot be read as CSV ({err})") from None
        finally:
            csv.field_size_limit(limit)


def is_square(n: int) -> bool:
    return n >= 1 and math.isqrt(n) ** 2 == n


def is_number(text: str) -> bool:
    return bool(_NUMBER.match(text))


def normalise_label(value: object) -> str:
    """One spelling per label: a number as its shortest decimal (`5.0`, `05`, `+5` -> `5`,
    `2.50` -> `2.5`), anything else as its stripped text."""
    text = str(value).strip().strip('"').strip()
    if not _NUMBER.match(text):
        return text
    try:
        number = Decimal(text)
    except InvalidOperation:  # pragma: no cover - _NUMBER only lets decimals through
        return text
    if number.adjusted() > 40:  # an int of this many digits is no label; keep it short
        return str(number.normalize())
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def normalise_labels(values: np.ndarray) -> np.ndarray:
    """normalise_label over an array, computed once per distinct value."""
    if len(values) == 0:
        return np.asarray(values, dtype=str)
    distinct, inverse = np.unique(np.asarray(values, dtype=str), return_inverse=True)
    return np.array([normalise_label(v) for v in distinct.tolist()], dtype=str)[inverse.ravel()]


# --- from a file (plain, gzip, zip) to UTF-8 text -------------------------------------------


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f", ... ({len(names)} files in all)" if len(names) > MAX_LISTED else "")


def _zip_files(path: Path) -> list[zipfile.ZipInfo]:
    """The files of a zip archive, without folders and macOS resource forks."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"{path}: not a readable zip archive ({err})") from None
    return [
        info
        for info in infos
        if not info.is_dir()
        and not info.filename.startswith("__MACOSX/")
        and not PurePosixPath(info.filename).name.startswith("._")
    ]


def _is_csv_name(name: str) -> bool:
    return name.lower().endswith((".csv", ".csv.gz"))


def _zip_read(path: Path, member: str) -> bytes:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read(member)
    except KeyError:
        raise DataError(f"{path}: holds no {member}") from None
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, zlib.error, EOFError) as err:
        raise DataError(f"{path}:{member}: cannot be extracted ({err})") from None


def _only_csv(path: Path) -> str:
    """The one CSV member of a zip archive given as a CSV file."""
    infos = _zip_files(path)
    names = [info.filename for info in infos]
    if any(name.startswith("xl/") for name in names) and "[Content_Types].xml" in names:
        raise DataError(f"{path}: an Excel workbook (.xlsx), not CSV; save it as CSV")
    csvs = [name for name in names if _is_csv_name(name)]
    if not csvs:
        held = _listing(names) if names else "nothing"
        raise DataError(f"{path}: a zip archive holding no CSV file; it holds {held}")
    if len(csvs) > 1:
        raise DataError(
            f"{path}: a zip archive holding {len(csvs)} CSV files ({_listing(csvs)}); "
            "one is needed here (a Kaggle competition zip goes in data.kaggle_zip)"
        )
    return csvs[0]


def _gunzip(name: str, raw: bytes) -> bytes:
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{name}: a damaged gzip file ({err})") from None


def _load(source: Source) -> tuple[str, bytes]:
    """(name for messages, the file's bytes): gzip and zip unpacked, anything else as it is."""
    path = source.path
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if source.member is not None:
        name, raw = str(source), _zip_read(path, source.member)
    else:
        name, raw = str(path), path.read_bytes()
        if raw.startswith(ZIP_MAGICS):
            member = _only_csv(path)
            name, raw = f"{path}:{member}", _zip_read(path, member)
    if raw.startswith(GZIP_MAGIC):
        raw = _gunzip(name, raw)
    if raw.startswith(ZIP_MAGICS):
        raise DataError(f"{name}: a zip archive inside an archive; extract it first")
    if len(raw) > 262 and raw[257:262] == b"ustar":
        raise DataError(f"{name}: a tar archive; extract the CSV from it")
    return name, raw


def _decode(name: str, raw: bytes) -> tuple[bytes, str]:
    """The text as UTF-8 bytes, and the encoding it was read from."""
    for mark, codec, family in UNICODE_BOMS:
        if raw.startswith(mark):
            try:
                return raw[len(mark) :].decode(codec).encode("utf-8"), family
            except UnicodeDecodeError as err:
                raise DataError(f"{name}: starts with a {family} byte order mark but is not {family} text ({err.reason} at byte {err.start})") from None
    for magic, what in NOT_CSV:
        if raw.startswith(magic):
            raise DataError(f"{name}: {what}")
    if raw.startswith(BOM):
        raw = raw[len(BOM) :]
    sample = raw[:65536]
    if b"\x00" in sample:
        # UTF-16 without a byte order mark: every other byte of ASCII text is zero
        odd, even = sample[1::2], sample[0::2]
        for codec, zeros in (("utf-16-le", odd), ("utf-16-be", even)):
            if zeros and zeros.count(0) * 10 >= len(zeros) * 9:
                try:
                    return raw.decode(codec).encode("utf-8"), "UTF-16"
                except UnicodeDecodeError:
                    break
        raise DataError(f"{name}: holds NUL bytes: a binary file, not CSV text")
    if raw.isascii():
        return raw, "utf-8"
    try:
        raw.decode("utf-8")
        return raw, "utf-8"
    except UnicodeDecodeError:
        pass
    # not UTF-8: Excel's CSV on Windows is Windows-1252; Latin-1 reads any byte
    try:
        return raw.decode("cp1252").encode("utf-8"), "Windows-1252"
    except UnicodeDecodeError:
        return raw.decode("latin-1").encode("utf-8"), "Latin-1"


def _scan(path: PathLike) -> _Text:
    name, raw = _load(as_source(path))
    raw, encoding = _decode(name, raw)
    if not raw.strip():
        raise DataError(f"{name}: file is empty")
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
        raise DataError(f"{name} line {int(np.argmax(blank)) + 1}: blank line inside the data")
    return _Text(name, raw, starts.astype(np.int64), ends.astype(np.int64), encoding)


def kaggle_zip(path: str | Path) -> dict[str, Source | None]:
    """The `train`, `test` and `sample` (sample submission, or None) CSVs of a Kaggle zip.

    A member named exactly train.csv / test.csv / sample_submission.csv is taken first;
    else one whose name holds the word (fashion-mnist_train.csv, sign_mnist_test.csv).
    Copies of one file (same size and CRC) count once.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open("rb") as handle:
        if not handle.read(4).startswith(ZIP_MAGICS):
            raise DataError(f"{path}: data.kaggle_zip must be a zip archive (as Kaggle downloads it)")
    held = _zip_files(path)
    infos = [info for info in held if _is_csv_name(info.filename)]
    names = [info.filename for info in held]

    def pick(role: str, exact: str, words: tuple[str, ...], required: bool) -> Source | None:
        def base(info: zipfile.ZipInfo) -> str:
            return PurePosixPath(info.filename).name.lower()

        found = [info for info in infos if base(info) in (exact, exact + ".gz")]
        if not found:
            found = [
                info
                for info in infos
                if set(re.split(r"[^a-z0-9]+", base(info).removesuffix(".gz").removesuffix(".csv"))) & set(words)
            ]
        distinct: dict[tuple[int, int], zipfile.ZipInfo] = {}
        for info in sorted(found, key=lambda i: (len(i.filename), i.filename)):
            distinct.setdefault((info.CRC, info.file_size), info)  # the shortest name of each copy
        found = list(distinct.values())
        if len(found) > 1:
            listed = _listing([info.filename for info in found])
            raise DataError(f"{path}: holds {len(found)} {role} CSV files ({listed}); expected one")
        if not found:
            if required:
                held = _listing(names) if names else "nothing"
                raise DataError(f"{path}: holds no {role} CSV (such as {exact}); it holds {held}")
            return None
        return Source(path, found[0].filename)

    return {
        "train": pick("training", "train.csv", ("train",), True),
        "test": pick("test", "test.csv", ("test",), True),
        "sample": pick("sample submission", "sample_submission.csv", ("sample", "submission"), False),
    }


# --- header and layout ------------------------------------------------------------------


def _unquote(cell: str) -> str:
    return cell.strip().strip('"').strip()


def _is_name(cell: str) -> bool:
    """A cell that can be a column name: text that is neither a number nor a missing-value mark."""
    text = _unquote(cell)
    return bool(text) and not is_number(text) and text.lower() not in _MISSING_MARKS


def _looks_like_header(fields: list[str]) -> bool:
    """A first line is a header when most of its cells are names, or when it is a name
    (such as `label`) followed by column numbers counting up by one from 0 or 1 (as
    pandas writes them). A line of empty or numeric cells is never a header."""
    cells = [_unquote(f) for f in fields]
    if sum(_is_name(c) for c in cells) * 2 > len(cells):
        return True
    rest = cells[1:]
    if len(rest) >= 8 and _is_name(cells[0]) and all(_INTEGER.match(c) for c in rest):
        numbers = np.array([int(c) for c in rest])
        return bool(numbers[0] in (0, 1) and np.all(np.diff(numbers) == 1))
    return False


def _header(text: _Text) -> tuple[bool, list[str]]:
    fields = text.fields(0)
    if len(fields) == 1:
        line = text.line(0)
        for mark, what in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
            if mark in line:
                raise DataError(f"{text.path}: fields are separated by {what}, not commas; save the file as comma-separated CSV")
    has_header = _looks_like_header(fields)
    if has_header and len(text.starts) == 1:
        raise DataError(f"{text.path}: header only, no data rows")
    return has_header, fields


def _kind(name: str) -> str | None:
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    return "id" if key in ID_NAMES else "label" if key in LABEL_NAMES else None


def _preview(names: list[str] | None, ncols: int) -> str:
    if names is None:
        return f"no header, {plural(ncols, 'column')}"
    shown = [repr(n) for n in names[:3]]
    if ncols > 4:
        shown += ["...", repr(names[-1])]
    elif ncols == 4:
        shown.append(repr(names[3]))
    return f"columns {', '.join(shown)} ({ncols} in all)"


@dataclass(frozen=True)
class _Layout:
    id_col: int | None
    label_col: int | None
    ncols: int

    @property
    def pixel_cols(self) -> np.ndarray:
        taken = {self.id_col, self.label_col}
        return np.array([j for j in range(self.ncols) if j not in taken], dtype=np.int64)

    @property
    def text_cols(self) -> list[int]:
        return [j for j in (self.id_col, self.label_col) if j is not None]


def _named_columns(path: str, names: list[str] | None, ncols: int) -> tuple[int | None, int | None]:
    """The ImageId and label columns the header names (None where it names none)."""
    if names is None:
        return None, None
    kinds = [_kind(n) for n in names]
    ids = [j for j, k in enumerate(kinds) if k == "id"]
    labels = [j for j, k in enumerate(kinds) if k == "label"]
    if len(ids) > 1 or len(labels) > 1:
        several = ids if len(ids) > 1 else labels
        what = "ImageId" if len(ids) > 1 else "label"
        raise DataError(
            f"{path}: {len(several)} columns are named as the {what} "
            f"({', '.join(repr(names[j]) for j in several)}); keep one"
        )
    if ids and ids[0] != 0:
        raise DataError(f"{path}: column {ids[0] + 1} is named {names[ids[0]]!r}; an ImageId column must be the first")
    id_col = ids[0] if ids else None
    label_col = labels[0] if labels else None
    start = 0 if id_col is None else 1
    if label_col is not None and label_col not in (start, ncols - 1):
        raise DataError(
            f"{path}: column {label_col + 1} is named {names[label_col]!r}; the label must be the first column "
            f"(after an ImageId) or the last; {_preview(names, ncols)}"
        )
    return id_col, label_col


def _train_layout(path: str, names: list[str] | None, ncols: int) -> _Layout:
    start = 0
    if names is not None and ncols > 2 and _kind(names[0]) == "id":
        start = 1
    width = ncols - start
    if width < 2:
        raise DataError(
            f"{path}: {plural(width, 'column')}; a training file needs a label column "
            "and then the pixels (e.g. 785 = label + 28x28)"
        )
    if is_square(width):
        side = math.isqrt(width)
        raise DataError(
            f"{path}: {width} columns make a {side}x{side} image with no label column; "
            "a training file starts with the label (e.g. 785 = label + 28x28)"
        )
    if not is_square(width - 1):
        hint = "; is there an extra index column?" if is_square(width - 2) else ""
        raise DataError(
            f"{path}: {width - 1} pixel columns after the label is not a square image "
            f"(e.g. 784 = 28x28){hint}"
        )
    id_col, label_col = _named_columns(path, names, ncols)
    if label_col is None:
        label_col = start
        if names is not None and _PIXEL_NAME.match(names[start]):
            raise DataError(
                f"{path}: no label column: the header names no label, and its column {start + 1} is "
                f"{names[start]!r}, a pixel; name the label column 'label' (first or last); {_preview(names, ncols)}"
            )
    return _Layout(id_col, label_col, ncols)


def _test_layout(
    path: str, names: list[str] | None, ncols: int, n_pixels: int, train: Table | None
) -> tuple[_Layout | None, str]:
    """The layout, or None when the first column's values must decide; and what was seen."""
    seen = _preview(names, ncols)
    p = n_pixels
    expected = (
        f"expected {p} (pixels only), {p + 1} (a label or an ImageId column, then the pixels) "
        f"or {p + 2} (ImageId, label, then the pixels)"
    )
    extra = ncols - p
    if extra < 0:
        raise DataError(
            f"{path}: {plural(ncols, 'column')}, fewer than the training file's {plural(p, 'pixel column')}; {expected}"
        )
    if extra > 2:
        hint = "; is there an extra index column?" if extra == 3 else ""
        raise DataError(f"{path}: {ncols} columns, more than the training file's {p} pixels allow; {expected}{hint}")
    id_col, label_col = _named_columns(path, names, ncols)
    train_label = train.label_name if train is not None else None
    if names is not None and label_col is None and train_label and extra >= 1:
        # the training file's own name for its label column
        start = 0 if id_col is None else 1
        for j in (start, ncols - 1):
            if names[j].strip().lower() == train_label.strip().lower():
                label_col = j
                break
    named = (id_col is not None) + (label_col is not None)
    if named > extra:
        what = " and ".join(
            f"{'an ImageId' if j == id_col else 'a label'} column ({names[j]!r})" for j in (id_col, label_col) if j is not None
        )
        raise DataError(
            f"{path}: the header names {what}, which leaves {ncols - named} pixel columns for the "
            f"training file's {p}; {seen}"
        )
    if named == extra:
        return _Layout(id_col, label_col, ncols), seen
    if extra == 2:  # ImageId and label, one of them or both unnamed
        raise DataError(
            f"{path}: {ncols} columns for the training file's {p} pixels, and the header does not name the other "
            f"{extra - named}; name them ImageId and label in a header line; {seen}"
        )
    if names is not None and _PIXEL_NAME.match(names[0]):
        raise DataError(
            f"{path}: {ncols} columns for the training file's {p} pixels, and the first is named {names[0]!r}, "
            f"a pixel; name the extra column (ImageId or label); {seen}"
        )
    return None, seen  # one unnamed column before the pixels: its values decide


def _first_column_role(path: str, values: np.ndarray, train: Table | None, seen: str, first_line: int) -> str:
    """'id' or 'label' for an unnamed first column of a test file, from its values."""
    n = len(values)
    ids_like = False
    if n and all(_INTEGER.match(v) for v in values.tolist()):
        numbers = np.array([int(v) for v in values.tolist()], dtype=object)
        ids_like = any(np.array_equal(numbers, np.arange(s, s + n)) for s in (0, 1))
    known = set(train.labels.tolist()) if train is not None and train.labels is not None else None
    unknown = [v for v in values.tolist() if v != "" and known is not None and v not in known]
    where = f"the first column (lines {first_line}..{first_line + n - 1})"
    if ids_like and not unknown:
        raise DataError(
            f"{path}: cannot tell whether {where} holds labels or ImageIds: its values count up by one "
            f"and every one is a training label; name it (label or ImageId) in a header line; {seen}"
        )
    if ids_like:
        return "id"
    if len(unknown) * 2 > n:
        raise DataError(
            f"{path}: {where} is neither a label column ({len(unknown)} of its {plural(n, 'value')}, "
            f"e.g. {unknown[0]!r}, "
            f"are no training label) nor ImageIds counting up by one; name it (label or ImageId) in a header line; {seen}"
        )
    return "label"


# --- cells ----------------------------------------------------------------------------------


def _column_names(header: list[str] | None, layout: _Layout) -> list[str]:
    if header is not None:
        return [f.strip().strip('"') or f"column {j + 1}" for j, f in enumerate(header)]
    names = [""] * layout.ncols
    for i, j in enumerate(layout.pixel_cols.tolist()):
        names[j] = f"pixel{i}"
    if layout.label_col is not None:
        names[layout.label_col] = "label"
    if layout.id_col is not None:
        names[layout.id_col] = "ImageId"
    return names


@dataclass(frozen=True)
class _Rows:
    """The data lines of a CSV file, parsed and checked."""

    pixels: np.ndarray  # uint8 (N, P): the pixel columns, bad cells set to 0
    codes: np.ndarray  # int8 (N, P): `_cell_problems`' code of every pixel cell
    text: pd.DataFrame  # the columns read as text (labels, ImageIds), named by file column


def _read_rows(text: _Text, has_header: bool, text_cols: list[int], pixel_cols: np.ndarray) -> _Rows:
    """Parse the data lines ROWS_PER_STEP at a time, checking each step's pixel cells as one
    block, with a progress bar of the rows read."""
    expected = len(text.starts) - has_header
    pixels = np.zeros((expected, len(pixel_cols)), np.uint8)
    codes = np.zeros((expected, len(pixel_cols)), np.int8)
    texts, parsed = [], 0
    # the pixel columns are one run (labels and ImageIds stand at the ends): a slice, not a copy per step
    first, last = int(pixel_cols[0]), int(pixel_cols[-1])
    columns = slice(first, last + 1) if last - first + 1 == len(pixel_cols) else pixel_cols
    bar = progress(total=expected, desc=f"reading {text.path}", unit="row")
    try:
        with bar, warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            steps = pd.read_csv(
                io.BytesIO(text.raw),
                header=None,
                skiprows=1 if has_header else 0,
                dtype={j: str for j in text_cols} or None,
                keep_default_na=False,
                na_values=[""],
                skip_blank_lines=True,
                engine="c",
                encoding="utf-8",
                encoding_errors="replace",
                chunksize=ROWS_PER_STEP,
            )
            for frame in steps:
                rows = slice(parsed, parsed + len(frame))
                parsed += len(frame)
                if parsed <= expected:
                    pixels[rows], codes[rows] = _cell_problems(frame.iloc[:, columns])
                    texts.append(frame[text_cols])
                bar.update(len(frame))
    except (pd.errors.ParserError, ValueError, OverflowError) as err:
        raise DataError(f"{text.path}: cannot be read as CSV ({' '.join(str(err).split())})") from None
    if parsed != expected:
        raise DataError(
            f"{text.path}: parsed {plural(parsed, 'row')} from {plural(expected, 'data line')} "
            "(quoted line breaks are not supported)"
        )
    return _Rows(pixels, codes, pd.concat(texts, ignore_index=True) if texts else pd.DataFrame())


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
            f"{text.path} line {first + 1}: {plural(int(counts[first]), 'field')}, expected {expected}{more}"
        )


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
    text: _Text, codes: np.ndarray, first_line: int, names: list[str], pixel_cols: np.ndarray
) -> list[Issue]:
    """Issues for the non-zero codes; codes[:, k] is file column pixel_cols[k]."""
    rows, cols = np.nonzero(codes)
    issues = []
    cached_row, fields = -1, []
    for row, col in zip(rows.tolist(), cols.tolist()):
        line = row + first_line
        if row != cached_row:
            cached_row, fields = row, text.fields(line - 1)
        j = int(pixel_cols[col])
        value = fields[j]
        reason = _CODES[int(codes[row, col])] or _unreadable_reason(value)
        issues.append(Issue(row, line, names[j], value, reason))
    return issues


def _text_column(frame: pd.DataFrame, j: int) -> np.ndarray:
    """File column `j` of a frame read without a header (its columns named 0, 1, ...), as stripped text."""
    column = frame[j].fillna("").astype(str).str.strip().str.strip('"').str.strip()
    return column.to_numpy(dtype=str)


def _label_issues(labels: np.ndarray, text: _Text, first_line: int, names: list[str], j: int) -> list[Issue]:
    rows = np.flatnonzero(labels == "")
    return [
        Issue(int(r), int(r) + first_line, names[j], text.fields(int(r) + first_line - 1)[j], MISSING_LABEL)
        for r in rows
    ]


def _check_not_scaled(path: str, codes: np.ndarray) -> None:
    """Refuse images scaled to 0..1, where nearly every row would hold bad cells."""
    rows = int(np.count_nonzero((codes == 3).any(axis=1)))
    if rows >= 10 and rows * 2 > len(codes):
        raise DataError(
            f"{path}: {rows} of {len(codes)} rows hold fractional pixel values (scaled to 0..1?); "
            f"expected whole numbers 0..{PIXEL_MAX}"
        )


def _check_ids(text: _Text, ids: np.ndarray, first_line: int, name: str) -> None:
    """An ImageId column: no empty cell, no value twice."""
    empty = np.flatnonzero(ids == "")
    if len(empty):
        raise DataError(
            f"{text.path} line {int(empty[0]) + first_line}, column {name}: empty ImageId; a test row cannot be dropped"
        )
    if len(np.unique(ids)) < len(ids):
        seen: dict[str, int] = {}
        for row, value in enumerate(ids.tolist()):
            if value in seen:
                raise DataError(
                    f"{text.path} line {row + first_line}, column {name}: ImageId {value} repeats line {seen[value] + first_line}"
                )
            seen[value] = row


# --- the readers ----------------------------------------------------------------------------


def read_train(path: PathLike) -> Table:
    """Read a training file: a label column, then a square number of pixel columns (or the
    pixels, then a last column named `label`; an ImageId column may come first).

    Bad cells are returned as issues (their pixels set to 0), rows are never dropped.
    """
    text = _scan(path)
    has_header, first = _header(text)
    ncols = len(first)
    header = [_unquote(f) for f in first] if has_header else None
    layout = _train_layout(text.path, header, ncols)
    _check_field_counts(text, ncols)
    pixel_cols = layout.pixel_cols
    read = _read_rows(text, has_header, layout.text_cols, pixel_cols)
    names = _column_names(first if has_header else None, layout)
    first_line = 2 if has_header else 1

    pixels, codes = read.pixels, read.codes
    _check_not_scaled(text.path, codes)
    labels = normalise_labels(_text_column(read.text, layout.label_col))
    # label issues first, so a stable sort by row keeps each row's cells in column order
    issues = _label_issues(labels, text, first_line, names, layout.label_col)
    issues += _cell_issues(text, codes, first_line, names, pixel_cols)
    issues.sort(key=lambda issue: issue.row)
    lines = np.arange(len(pixels), dtype=np.int64) + first_line
    ids = normalise_labels(_text_column(read.text, layout.id_col)) if layout.id_col is not None else None
    return Table(
        text.path, pixels, labels, lines, has_header, issues,
        ids=ids, columns=names, label_column=layout.label_col, id_column=layout.id_col, encoding=text.encoding,
    )


def read_test(path: PathLike, n_pixels: int, train: Table | None = None) -> Table:
    """Read a test file with `n_pixels` pixel columns, optionally preceded by a label, an
    ImageId, or both (see the module docstring for how the layout is told).

    `train`, the training file as read, lets an unnamed first column be told apart by its
    values: training labels, or ImageIds counting up by one. Any bad cell raises DataError
    naming the line and column.
    """
    text = _scan(path)
    has_header, first = _header(text)
    ncols = len(first)
    header = [_unquote(f) for f in first] if has_header else None
    layout, seen = _test_layout(text.path, header, ncols, n_pixels, train)
    _check_field_counts(text, ncols)
    first_line = 2 if has_header else 1
    # an undecided layout has one column (label or ImageId) before the pixels
    pixel_cols = layout.pixel_cols if layout is not None else np.arange(1, ncols)
    read = _read_rows(text, has_header, layout.text_cols if layout is not None else [0], pixel_cols)
    if layout is None:
        values = normalise_labels(_text_column(read.text, 0))
        role = _first_column_role(text.path, values, train, seen, first_line)
        layout = _Layout(0 if role == "id" else None, 0 if role == "label" else None, ncols)
    names = _column_names(first if has_header else None, layout)

    pixels, codes = read.pixels, read.codes
    labels = None
    issues = []
    if layout.label_col is not None:
        labels = normalise_labels(_text_column(read.text, layout.label_col))
        issues = _label_issues(labels, text, first_line, names, layout.label_col)
    issues += _cell_issues(text, codes, first_line, names, pixel_cols)
    if issues:
        bad = min(issues, key=lambda issue: issue.row)
        more = f" ({len(issues)} bad cells in all)" if len(issues) > 1 else ""
        raise DataError(
            f"{text.path} line {bad.line}, column {bad.column}: {bad.reason} ({bad.value!r}); "
            f"a test row cannot be dropped{more}"
        )
    ids = None
    if layout.id_col is not None:
        ids = normalise_labels(_text_column(read.text, layout.id_col))
        _check_ids(text, ids, first_line, names[layout.id_col])
    lines = np.arange(len(pixels), dtype=np.int64) + first_line
    return Table(
        text.path, pixels, labels, lines, has_header, [],
        ids=ids, columns=names, label_column=layout.label_col, id_column=layout.id_col, encoding=text.encoding,
    )


def _id_rows(
    path: str, ids: np.ndarray, first_line: int, column: str, n_rows: int, test_ids: np.ndarray | None
) -> np.ndarray:
    """The test row of each ImageId: ImageId k is row k-1, or, when the test file has an
    ImageId column (`test_ids`), the row holding that ImageId."""
    if test_ids is None:
        whole = np.array([bool(_INTEGER.match(v)) for v in ids.tolist()], dtype=bool)
        if not whole.all():
            row = int(np.argmin(whole))
            raise DataError(f"{path} line {row + first_line}, column {column}: {str(ids[row])!r} is not a whole number")
        numbers = np.array([int(v) for v in ids.tolist()], dtype=object)
        outside = [r for r, v in enumerate(numbers.tolist()) if not 1 <= v <= n_rows]
        if outside:
            row = outside[0]
            raise DataError(f"{path} line {row + first_line}: ImageId {numbers[row]} is outside 1..{n_rows}")
        rows = numbers.astype(np.int64) - 1
    else:
        index = {value: row for row, value in enumerate(test_ids.tolist())}
        missing = [r for r, v in enumerate(ids.tolist()) if v not in index]
        if missing:
            row = missing[0]
            raise DataError(
                f"{path} line {row + first_line}, column {column}: ImageId {ids[row]} is not in the test file's ImageId column"
            )
        rows = np.array([index[v] for v in ids.tolist()], dtype=np.int64)
    if len(np.unique(rows)) < len(rows):
        seen: dict[int, int] = {}
        for position, row in enumerate(rows.tolist()):
            if row in seen:
                raise DataError(
                    f"{path} line {position + first_line}: ImageId {ids[position]} repeats line {seen[row] + first_line}"
                )
            seen[row] = position
    return rows


def _two_columns(path: PathLike, what: str) -> tuple[_Text, bool, list[str], pd.DataFrame]:
    text = _scan(path)
    first = text.fields(0)
    has_header = _looks_like_header(first)
    if has_header and len(text.starts) == 1:
        raise DataError(f"{text.path}: header only, no data rows")
    if len(first) != 2:
        raise DataError(f"{text.path}: {plural(len(first), 'column')}; {what} has two, ImageId,Label")
    _check_field_counts(text, 2)
    try:
        frame = pd.read_csv(
            io.BytesIO(text.raw), header=None, skiprows=1 if has_header else 0, dtype=str,
            keep_default_na=False, encoding="utf-8", encoding_errors="replace",
        )
    except (pd.errors.ParserError, ValueError) as err:
        raise DataError(f"{text.path}: cannot be read as CSV ({' '.join(str(err).split())})") from None
    names = [_unquote(f) for f in first] if has_header else ["ImageId", "Label"]
    return text, has_header, names, frame


def read_answers(path: PathLike, n_rows: int, test_ids: np.ndarray | None = None) -> np.ndarray:
    """Read an `ImageId,Label` answers file; return the labels (str, normalised) in test-row order.

    The file must hold exactly one row for each ImageId 1..n_rows, or for each ImageId of
    the test file's ImageId column when it has one (`test_ids`).
    """
    text, has_header, names, frame = _two_columns(path, "an answers file")
    first_line = 2 if has_header else 1
    ids = normalise_labels(_text_column(frame, 0))
    labels = normalise_labels(_text_column(frame, 1))
    missing = np.flatnonzero(labels == "")
    if len(missing):
        raise DataError(f"{text.path} line {int(missing[0]) + first_line}, column {names[1]}: {MISSING_LABEL}")
    if len(frame) != n_rows:
        which = f"ImageId 1..{n_rows}" if test_ids is None else "each ImageId of its ImageId column"
        raise DataError(
            f"{text.path}: {plural(len(frame), 'answer')} for {plural(n_rows, 'test image')}; "
            f"expected one row per test image ({which})"
        )
    rows = _id_rows(text.path, ids, first_line, names[0], n_rows, test_ids)
    answers = np.empty(n_rows, dtype=labels.dtype)
    answers[rows] = labels
    return answers


def read_sample_submission(path: PathLike, test: Table) -> dict:
    """The submission format a sample submission gives for `test`: its column names, its
    ImageIds in its order, and the test row of each (by ImageId when the test file has an
    ImageId column, else line by line)."""
    text, has_header, names, frame = _two_columns(path, "a sample submission")
    first_line = 2 if has_header else 1
    ids = normalise_labels(_text_column(frame, 0))
    if len(frame) != test.rows:
        raise DataError(f"{text.path}: {plural(len(frame), 'row')} for {plural(test.rows, 'test image')}; "
                        "expected one per test image")
    empty = np.flatnonzero(ids == "")
    if len(empty):
        raise DataError(f"{text.path} line {int(empty[0]) + first_line}, column {names[0]}: empty ImageId")
    if test.ids is not None:
        rows = _id_rows(text.path, ids, first_line, names[0], test.rows, test.ids)
    else:
        rows = np.arange(test.rows, dtype=np.int64)
        if len(np.unique(ids)) < len(ids):
            _id_rows(text.path, ids, first_line, names[0], test.rows, ids)  # names the repeat
    original = _text_column(frame, 0)  # written back as the sample spells them
    return {"columns": names, "ids": original.tolist(), "rows": rows.tolist(), "source": text.path}

