"""The error users see, and the wrapper that turns it into one line and exit code 2."""

from __future__ import annotations

import sys
from typing import Callable

from .params import ParamsError


class DataError(ValueError):
    """An input file cannot be used; the message names the file, and row and column where known."""


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run a stage's main(); a known input problem becomes one line on stderr and exit 2."""
    try:
        main()
    except (DataError, ParamsError) as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
