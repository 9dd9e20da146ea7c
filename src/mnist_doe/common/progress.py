"""Progress bars for the work that takes seconds on full-size data, every stage's drawn alike.

A bar goes to stderr, in words (`reading data/external/train.csv: 40%|████ | 24576/60000
[00:03<00:04, 8123.45row/s]`), and only where someone watches: on a terminal, once the work
has taken a second. In logs, CI and tests stderr is no terminal and nothing is drawn, so
the logs hold the stages' own lines only. `MNIST_DOE_PROGRESS=1` draws every bar at once,
terminal or not; `MNIST_DOE_PROGRESS=0` draws none.

Callers update a bar once per chunk of rows or images, never once per element.
"""

from __future__ import annotations

import os
import sys

from tqdm import tqdm

ENV = "MNIST_DOE_PROGRESS"
DELAY = 1.0  # seconds of work before a bar appears on a terminal: quick work draws nothing
_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def forced() -> bool | None:
    """True or False when `MNIST_DOE_PROGRESS` forces bars on or off; None when unset."""
    value = os.environ.get(ENV, "").strip().lower()
    if not value:
        return None
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ValueError(f"{ENV}={os.environ[ENV]!r}: expected 1 (draw progress bars) or 0 (draw none)")


def progress(*, total: int, desc: str, unit: str, initial: int = 0) -> tqdm:
    """A tqdm bar on stderr of `total` things: `desc` says what is done, `unit` what is counted
    ("row", "image"), `initial` how many were done before (a resumed study). Hidden unless
    stderr is a terminal or `MNIST_DOE_PROGRESS` is 1 (see the module docstring); a hidden bar
    costs nothing but its `update` calls."""
    on = forced()
    return tqdm(
        total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
        # disable=None: tqdm draws only when the file is a terminal
        disable=None if on is None else not on, delay=DELAY if on is None else 0.0,
    )


def say(message: str) -> None:
    """Print a line to stdout without breaking a bar drawn at the time (the bar is drawn
    again below it); flushed, so a log shows it at once."""
    tqdm.write(message, file=sys.stdout)
    sys.stdout.flush()
