"""Progress bars on stderr (on a terminal, or forced with MNIST_DOE_PROGRESS), never in logs;
drawn alike by every stage."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from mnist_doe.common.progress import ENV, progress, say

from project import env


def count_to_100(bar_desc: str = "reading data/external/train.csv") -> None:
    with progress(total=100, desc=bar_desc, unit="row") as bar:
        for _ in range(10):
            bar.update(10)


def test_a_forced_bar_is_drawn_on_stderr_in_words(monkeypatch, capsys):
    monkeypatch.setenv(ENV, "1")
    count_to_100()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "reading data/external/train.csv: 100%" in captured.err and "100/100" in captured.err
    assert "row/s" in captured.err


@pytest.mark.parametrize("value", ["0", None])
def test_no_bar_when_forced_off_or_when_stderr_is_no_terminal(monkeypatch, capsys, value):
    if value is None:
        monkeypatch.delenv(ENV, raising=False)  # pytest's stderr is no terminal
    else:
        monkeypatch.setenv(ENV, value)
    count_to_100()
    assert capsys.readouterr() == ("", "")


def test_a_bad_switch_is_named(monkeypatch):
    monkeypatch.setenv(ENV, "maybe")
    with pytest.raises(ValueError, match=r"^MNIST_DOE_PROGRESS='maybe': expected 1 \(draw progress bars\) or 0"):
        count_to_100()


def test_a_line_said_under_a_bar_goes_to_stdout(monkeypatch, capsys):
    monkeypatch.setenv(ENV, "1")
    with progress(total=2, desc="tuning", unit="cell") as bar:
        bar.update(1)
        say("tune: step 1: nodes = 32 wins")
        bar.update(1)
    captured = capsys.readouterr()
    assert captured.out == "tune: step 1: nodes = 32 wins\n" and "2/2" in captured.err


def test_on_a_terminal_only_work_that_lasts_draws_a_bar():
    """stderr a pseudo-terminal, no switch: a bar that finishes at once draws nothing, one that
    takes longer than the delay is drawn."""
    script = (
        "import time\n"
        "from mnist_doe.common.progress import DELAY, progress\n"
        "with progress(total=3, desc='quick work', unit='row') as bar:\n"
        "    bar.update(3)\n"
        "with progress(total=3, desc='slow work', unit='row') as bar:\n"
        "    for _ in range(3):\n"
        "        time.sleep(DELAY / 2)\n"
        "        bar.update(1)\n"
    )
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # a terminal 80 columns wide
    environment = {k: v for k, v in env().items() if k != ENV}
    process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=follower, env=environment)
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closes with the process
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    assert process.wait(timeout=60) == 0
    text = drawn.decode(errors="replace")
    assert "slow work" in text and "3/3" in text and "quick work" not in text
