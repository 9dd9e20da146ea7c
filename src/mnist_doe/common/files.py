"""Atomic file writing and the small file formats the stages share.

Every output is written to a temporary file beside its target and renamed into place,
so a crash never leaves a half-written array, CSV or JSON behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_png(fig, path: str | Path, dpi: int = 100, **savefig: Any) -> None:
    """Write a matplotlib figure to `path` as a PNG (atomically) and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", **savefig)
    plt.close(fig)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Write arrays to an uncompressed .npz atomically (plain arrays, no pickle)."""
    with atomic_path(path, ".npz") as tmp:
        np.savez(tmp, **arrays)


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read every array of an .npz written by `save_npz`; pickled objects are refused."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path, ".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
