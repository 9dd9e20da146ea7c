"""Progress bars on stderr (on a terminal, or forced with MNIST_DOE_PROGRESS), never in logs;
the stages' bars leave their results alone."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest
import yaml
from conftest import kaggle_csv, tiny_images, write_params

from mnist_doe import augment
from mnist_doe.common import files, params, paths
from mnist_doe.common.progress import ENV, progress, say

from project import env
from test_train import stage_dir  # noqa: F401  (fixture)


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


LABELS = [str(i % 3) for i in range(9000)]


def ingest_project(root, progress_switch: str) -> subprocess.CompletedProcess:
    """The ingest stage, run as DVC runs it, on a 9,000-row training file (two read steps)."""
    kaggle_csv(root / "data/external/train.csv", tiny_images(LABELS), LABELS)
    kaggle_csv(root / "data/external/test.csv", tiny_images(["0"] * 40, seed=1), ["0", "1"] * 20)
    write_params(root, data={"train_csv": "data/external/train.csv", "test_csv": "data/external/test.csv"})
    return subprocess.run([sys.executable, "-m", "mnist_doe.ingest"], cwd=root, capture_output=True, text=True,
                          env={**env(), ENV: progress_switch}, check=True)


def test_ingest_draws_a_bar_per_file_and_its_results_are_those_without(tmp_path):
    shown = ingest_project(tmp_path / "shown", "1")
    hidden = ingest_project(tmp_path / "hidden", "0")
    assert "reading data/external/train.csv: 100%" in shown.stderr and "9000/9000" in shown.stderr
    assert "reading data/external/test.csv: 100%" in shown.stderr and "40/40" in shown.stderr
    assert "row/s" in shown.stderr and hidden.stderr == ""
    assert shown.stdout == hidden.stdout  # the bars go to stderr only
    assert shown.stdout.startswith("ingest: 9000 training rows (0 with bad cells), 40 test rows, 4x4 images")
    for name in (paths.RAW_TRAIN, paths.RAW_TEST):
        a, b = files.load_npz(tmp_path / "shown" / name), files.load_npz(tmp_path / "hidden" / name)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    train = files.load_npz(tmp_path / "shown" / paths.RAW_TRAIN)
    np.testing.assert_array_equal(train["pixels"], tiny_images(LABELS))  # both steps, in order
    assert train["labels"].tolist() == LABELS and train["lines"].tolist() == list(range(2, 9002))


def test_augment_draws_a_bar_of_the_images_made(monkeypatch, capsys):
    images = np.random.default_rng(0).integers(0, 256, size=(300, 64), dtype=np.uint8)  # two chunks of 256
    y = np.arange(300) % 10
    knobs = params.AugmentParams(copies=2)  # 3 recipes x 2 copies: 1,800 images made
    monkeypatch.setenv(ENV, "0")
    hidden, _ = augment.augment_training_set(images, y, knobs)
    assert capsys.readouterr().err == ""
    monkeypatch.setenv(ENV, "1")
    shown, _ = augment.augment_training_set(images, y, knobs)
    err = capsys.readouterr().err
    assert "augmenting 300 training images: 100%" in err and "1800/1800" in err and "image/s" in err
    np.testing.assert_array_equal(shown, hidden)


@pytest.mark.slow
def test_predictions_in_steps_are_those_of_one_call():
    """A Keras model predicts PREDICT_ROWS rows a call: every batch as in one call over the set,
    so the same probabilities to the bit."""
    import keras
    import tensorflow as tf

    from mnist_doe import train
    from mnist_doe.engine.loop import EVAL_BATCH, Trainer
    from mnist_doe.engine.models import Regularisation, build_dense

    assert train.PREDICT_ROWS % EVAL_BATCH == 0
    keras.utils.set_random_seed(0)
    model = build_dense(784, 10, 2, 64, Regularisation())
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    trainer = Trainer(model, 32, tf.distribute.get_strategy())
    x = np.random.default_rng(1).integers(0, 256, size=(train.PREDICT_ROWS + 1500, 784), dtype=np.uint8)
    calls = []

    def predict(rows):
        calls.append(len(rows))
        return trainer.predict(rows)

    got = train.predict_sets(predict, {"val": x[:700], "test": x}, train.PREDICT_ROWS, "predicting")
    assert calls == [700, train.PREDICT_ROWS, 1500]
    np.testing.assert_array_equal(got["test"], trainer.predict(x))
    np.testing.assert_array_equal(got["val"], trainer.predict(x[:700]))


@pytest.mark.slow
def test_a_one_epoch_cell_says_1_epoch_and_draws_its_predictions(stage_dir, monkeypatch, capsys):  # noqa: F811
    from mnist_doe import train

    raw = yaml.safe_load(open(params.PARAMS_FILE))
    raw["train"]["epochs"] = 1
    raw["doe"]["cells"] = {"dense-1x16": {"family": "dense", "layers": 1, "nodes": 16}}
    with open(params.PARAMS_FILE, "w") as handle:
        yaml.safe_dump(raw, handle)
    monkeypatch.setenv(ENV, "1")
    train.main(["dense-1x16"])
    captured = capsys.readouterr()
    last = captured.out.strip().splitlines()[-1]
    assert last.startswith("train@dense-1x16: 1 epoch on 240 rows; 1 epoch timed: "), captured.out
    # 240 training, 60 validation and 50 test rows
    assert "predicting with dense-1x16: 100%" in captured.err and "350/350" in captured.err
