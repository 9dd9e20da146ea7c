"""augment.mode fresh: new random transforms of every image every epoch, drawn from (seed,
epoch) with ImageDataGenerator's ranges and applied per batch inside the training graph."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from mnist_doe import augment, train
from mnist_doe.common import files, params, paths
from mnist_doe.engine.fresh import draw_fresh_transforms, epoch_transforms, projective

from conftest import DEFAULT_PARAMS
from project import env, kill_after
from test_train import digits

RANGES = {"rotation_range": 10.0, "zoom_range": 0.1, "width_shift_range": 0.1, "height_shift_range": 0.1}
FRESH = {**RANGES, "fill_mode": "nearest", "seed": 42}


def warp(images: np.ndarray, maps: np.ndarray, fill_mode: str = "nearest") -> np.ndarray:
    import tensorflow as tf

    from mnist_doe.engine.loop import warp_batch

    return warp_batch(tf.constant(images), tf.constant(maps), fill_mode).numpy()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras' legacy module calls scipy.ndimage.interpolation
@pytest.mark.parametrize("fill_mode", ["nearest", "constant"])
def test_transforms_are_image_data_generators(fill_mode):
    """The same angle, shifts and zooms through ImageDataGenerator.apply_transform (scipy,
    order 1) and through the train graph's one op: equal up to rounding, in both fill modes."""
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    x = digits()[0][:120]
    n = len(x)
    matrices, offsets = draw_fresh_transforms(n, 28, np.random.default_rng(3), **RANGES)
    rng = np.random.default_rng(3)  # the same draws, in draw_fresh_transforms' order
    theta = rng.uniform(-10, 10, n)
    column_shift, row_shift = rng.uniform(-0.1, 0.1, n) * 28, rng.uniform(-0.1, 0.1, n) * 28
    zoom = rng.uniform(0.9, 1.1, (n, 2))
    generator = ImageDataGenerator(fill_mode=fill_mode)
    expected = np.stack([
        generator.apply_transform(x[i].reshape(28, 28, 1).astype(np.float32), {
            "theta": theta[i], "tx": column_shift[i], "ty": row_shift[i], "zx": zoom[i, 0], "zy": zoom[i, 1]})[..., 0]
        for i in range(n)
    ])
    got = warp(x, projective(matrices, offsets), fill_mode).reshape(n, 28, 28)
    assert np.abs(got.astype(int) - np.floor(expected + 0.5)).max() <= 1
    assert (got != x.reshape(n, 28, 28)).any(axis=(1, 2)).all()  # every image moved
    if fill_mode == "constant":  # the static copies' resampling, for the same maps
        static = augment.warp(x.reshape(n, 28, 28), matrices[None], offsets[None])[0]
        assert np.abs(got.astype(int) - static).max() <= 1


def test_zero_ranges_are_the_identity():
    maps = epoch_transforms(5, 28, {**FRESH, **{k: 0.0 for k in RANGES}}, seed=1, epoch=0)
    np.testing.assert_array_equal(maps, np.tile([1, 0, 0, 0, 1, 0, 0, 0], (5, 1)))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras' legacy module calls scipy.ndimage.interpolation
def test_horizontal_flips_are_image_data_generators():
    """With horizontal_flip the same maps, half of them then mirrored as ImageDataGenerator
    mirrors the transformed image; the angles, shifts and zooms are those drawn without it."""
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    x = digits()[0][:120]
    n = len(x)
    plain = draw_fresh_transforms(n, 28, np.random.default_rng(5), **RANGES)
    matrices, offsets = draw_fresh_transforms(n, 28, np.random.default_rng(5), **RANGES, horizontal_flip=True)
    rng = np.random.default_rng(5)
    theta = rng.uniform(-10, 10, n)
    column_shift, row_shift = rng.uniform(-0.1, 0.1, n) * 28, rng.uniform(-0.1, 0.1, n) * 28
    zoom = rng.uniform(0.9, 1.1, (n, 2))
    flip = rng.random(n) < 0.5
    assert 40 < flip.sum() < 80
    np.testing.assert_array_equal(matrices[~flip], plain[0][~flip])
    np.testing.assert_array_equal(offsets[~flip], plain[1][~flip])
    generator = ImageDataGenerator(fill_mode="nearest")
    expected = np.stack([
        generator.apply_transform(x[i].reshape(28, 28, 1).astype(np.float32), {
            "theta": theta[i], "tx": column_shift[i], "ty": row_shift[i], "zx": zoom[i, 0], "zy": zoom[i, 1],
            "flip_horizontal": bool(flip[i])})[..., 0]
        for i in range(n)
    ])
    got = warp(x, projective(matrices, offsets)).reshape(n, 28, 28)
    assert np.abs(got.astype(int) - np.floor(expected + 0.5)).max() <= 1


@pytest.mark.slow
def test_a_flip_alone_mirrors_exactly_and_is_drawn_anew_every_epoch():
    still = {**FRESH, **{k: 0.0 for k in RANGES}, "horizontal_flip": True}
    x = digits()[0][:64]
    mirrored = x.reshape(-1, 28, 28)[:, :, ::-1].reshape(len(x), -1)
    flipped = []
    for epoch in range(2):
        got = warp(x, epoch_transforms(len(x), 28, still, seed=1, epoch=epoch))
        is_mirror = (got == mirrored).all(axis=1)
        np.testing.assert_array_equal(got[~is_mirror], x[~is_mirror])  # the rest untouched
        assert 16 < is_mirror.sum() < 48
        flipped.append(is_mirror)
    assert (flipped[0] != flipped[1]).any()


@pytest.mark.slow
def test_no_two_epochs_see_the_same_transformed_image():
    x = digits()[0][:200]
    seen = [warp(x, epoch_transforms(len(x), 28, FRESH, seed=7, epoch=epoch)) for epoch in range(6)]
    for a in range(6):
        for b in range(a + 1, 6):
            assert (seen[a] != seen[b]).any(axis=1).all(), (a, b)
    # a function of (seed, epoch) only
    np.testing.assert_array_equal(epoch_transforms(200, 28, FRESH, 7, 3), epoch_transforms(200, 28, FRESH, 7, 3))
    assert not np.array_equal(epoch_transforms(200, 28, FRESH, 8, 3), epoch_transforms(200, 28, FRESH, 7, 3))


class Killed(Exception):
    pass


class KillAt:
    """A run log that dies as it logs epoch `epoch`: that epoch is logged but, as after a kill
    at that moment, not backed up."""

    def __init__(self, epoch: int):
        self.epoch, self.steps = epoch, 0

    def rewind(self, epochs):
        self.steps = epochs

    def log_metric(self, name, value):
        pass

    def next_step(self):
        self.steps += 1
        if self.steps == self.epoch:
            raise Killed


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["fast", "keras"])
def test_a_resumed_fresh_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, engine):
    """Killed while logging epoch 4, then trained to the end by another call (a new model, as a
    new process builds): the weights of a run never interrupted, bit for bit; epochs 4-6 see
    the transforms drawn again from (seed, epoch)."""
    from test_loop import _NoLog

    x, y = digits()
    data = {"x_fit": x[:240], "y_fit": y[:240], "x_val": x[240:300], "y_val": y[240:300], "fresh": FRESH}
    t = params.TrainParams(epochs=6, batch_size=32, optimizer="adam", learning_rate=0.003, engine=engine)
    c = params.Cell(name="dense-1x16", family="dense", layers=1, nodes=16, train=t)
    whole, _, done, _ = train.fit_keras(c, data, 10, _NoLog(), tmp_path / "whole")
    assert done == 6
    with pytest.raises(Killed):
        train.fit_keras(c, data, 10, KillAt(4), tmp_path / "killed")
    resumed, _, done, seconds = train.fit_keras(c, data, 10, _NoLog(), tmp_path / "killed")
    assert done == 6 and len(seconds) == 3  # epochs 4, 5, 6 trained again
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_augment_stage_writes_the_rows_unaugmented_with_the_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = json.loads(json.dumps(DEFAULT_PARAMS))
    raw["augment"].update(mode="fresh", rotation_range=15.0, fill_mode="constant")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    x, y = digits()
    files.save_npz(paths.CLEAN_TRAIN, pixels=x[:50], y=y[:50], lines=np.arange(2, 52))
    files.save_npz(paths.SPLIT, train=np.arange(0, 40), val=np.arange(40, 50))
    augment.main()
    written = files.load_npz(paths.AUGMENTED_TRAIN)
    np.testing.assert_array_equal(written["pixels"], x[:40])
    np.testing.assert_array_equal(written["source"], np.arange(40))
    assert json.loads(str(written["fresh"])) == {**RANGES, "rotation_range": 15.0, "fill_mode": "constant", "seed": 42}

    raw["augment"].update(horizontal_flip=True)  # written only when on
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    augment.main()
    assert json.loads(str(files.load_npz(paths.AUGMENTED_TRAIN)["fresh"]))["horizontal_flip"] is True


@pytest.mark.parametrize(("knobs", "message"), [
    ({"mode": "live"}, "'augment.mode' is 'live'; choose one of static, fresh"),
    ({"fill_mode": "reflect"}, "'augment.fill_mode' is 'reflect'; choose one of nearest, constant"),
    ({"rotation_range": 200.0}, "'augment.rotation_range' must be in [0, 180] degrees"),
    ({"width_shift_range": 1.5}, "'augment.width_shift_range' must be in [0, 1)"),
    ({"horizontal_flip": True}, "'augment.horizontal_flip' mirrors images afresh every epoch: it needs 'augment.mode: fresh'"),
    ({"mode": "fresh", "horizontal_flip": "sometimes"}, "augment.horizontal_flip"),
])
def test_bad_fresh_keys_are_one_line(knobs, message):
    raw = json.loads(json.dumps(DEFAULT_PARAMS))
    raw["augment"].update(knobs)
    with pytest.raises(params.ParamsError) as err:
        params.parse(raw)
    assert message in str(err.value) and "\n" not in str(err.value)


CELL = "dense-2x64"
EPOCHS = 30


def _curve_rows() -> int:
    tsv = paths.LIVE_DIR / CELL / "plots" / "metrics" / "val_accuracy.tsv"
    return max(0, len(tsv.read_text().splitlines()) - 1) if tsv.exists() else 0


@pytest.mark.long  # an end-to-end study of minutes: make test-all, CI
@pytest.mark.slow
def test_a_killed_fresh_cell_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    """The stage, SIGKILLed mid-run and run again, predicts what a run never interrupted does."""
    monkeypatch.chdir(tmp_path)
    raw = json.loads(json.dumps(DEFAULT_PARAMS))
    raw["augment"]["mode"] = "fresh"
    raw["doe"]["cells"] = {CELL: {"family": "dense", "layers": 2, "nodes": 64}}
    raw["train"].update(epochs=EPOCHS, batch_size=8)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    x, y = digits()
    files.save_npz(paths.CLEAN_TRAIN, pixels=x[:300], y=y[:300], lines=np.arange(2, 302))
    files.save_npz(paths.CLEAN_TEST, pixels=x[300:350], y=y[300:350], lines=np.arange(2, 52))
    files.save_npz(paths.SPLIT, train=np.arange(0, 240), n_folds=np.array(1), val_source=np.array("train"),
                   test_rows=np.arange(50), fit_0=np.arange(0, 240), val_0=np.arange(240, 300))
    files.write_json(paths.LABEL_MAP, {"classes": [str(i) for i in range(10)], "side": 28})
    augment.main()
    command = [sys.executable, "-m", "mnist_doe.train", CELL]
    whole = subprocess.run(command, env=env(), capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stdout[-2000:] + whole.stderr[-2000:]
    expected = dict(files.load_npz(paths.PREDICTIONS_DIR / f"{CELL}.npz"))
    for path in (paths.PREDICTIONS_DIR, paths.LIVE_DIR, paths.MODELS_DIR):
        subprocess.run(["rm", "-rf", str(path)], check=True)

    proc = subprocess.Popen(command, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    kill_after(proc, _curve_rows, 3)
    assert 3 <= _curve_rows() < EPOCHS

    rerun = subprocess.run(command, env=env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    epochs_run = [line for line in rerun.stdout.splitlines() if line.startswith("Epoch ") and "/" in line]
    assert epochs_run[0] != f"Epoch 1/{EPOCHS}" and epochs_run[-1] == f"Epoch {EPOCHS}/{EPOCHS}"
    got = files.load_npz(paths.PREDICTIONS_DIR / f"{CELL}.npz")
    for key in ("val", "test"):
        np.testing.assert_array_equal(got[key], expected[key])
