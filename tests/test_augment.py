"""The augment stage: shapes and counts, determinism, geometry, and main() on tiny files."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml
from scipy import ndimage

from mnist_doe import augment
from mnist_doe.common import files, params, paths

from project import ROOT

SIDE = 12


def blobs(count: int, seed: int = 0) -> np.ndarray:
    """uint8 images (count, SIDE, SIDE): a bright random block on black, away from the frame."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, SIDE, SIDE), np.uint8)
    images[:, 3:9, 4:8] = rng.integers(60, 256, size=(count, 6, 4))
    return images


def settings(**knobs) -> params.AugmentParams:
    return params.AugmentParams(**knobs)


def mass_centre(image: np.ndarray) -> np.ndarray:
    rows, cols = np.indices(image.shape)
    total = image.sum(dtype=np.float64)
    return np.array([(rows * image).sum() / total, (cols * image).sum() / total])


def test_training_set_is_ten_times_with_originals_first_and_labels_aligned():
    images = blobs(20)
    pixels, y = images.reshape(20, -1), np.arange(20, dtype=np.int64) % 7
    out, labels = augment.augment_training_set(pixels, y, settings())
    assert out.shape == (200, SIDE * SIDE) and out.dtype == np.uint8
    assert labels.shape == (200,) and labels.dtype == np.int64
    np.testing.assert_array_equal(out[:20], pixels)
    np.testing.assert_array_equal(labels, np.tile(y, 10))
    copies = out.reshape(10, 20, -1)
    for k in range(1, 10):
        assert not np.array_equal(copies[k], pixels), f"copy {k} left the images unchanged"


def test_copies_and_recipes_set_the_count():
    pixels = blobs(5).reshape(5, -1)
    y = np.zeros(5, np.int64)
    out, labels = augment.augment_training_set(pixels, y, settings(copies=2, recipes=["translate+zoom"]))
    assert out.shape == (15, SIDE * SIDE) and labels.shape == (15,)
    out, labels = augment.augment_training_set(pixels, y, settings(copies=0))
    np.testing.assert_array_equal(out, pixels)


def test_same_seed_same_output_other_seed_other_output():
    pixels, y = blobs(30).reshape(30, -1), np.arange(30)
    first, _ = augment.augment_training_set(pixels, y, settings(seed=3))
    again, _ = augment.augment_training_set(pixels, y, settings(seed=3))
    other, _ = augment.augment_training_set(pixels, y, settings(seed=4))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first[30:], other[30:])


def test_training_set_equals_augment_images_per_recipe_and_copy():
    images = blobs(10)
    knobs = settings(copies=2, seed=11)
    out, _ = augment.augment_training_set(images.reshape(10, -1), np.zeros(10), knobs)
    rng = np.random.default_rng(11)
    expected = [images] + [
        augment.augment_images(images, recipe, rng, translate=0.1, rotate=0.1, zoom=0.15)
        for recipe in knobs.recipes
        for _ in range(2)
    ]
    np.testing.assert_array_equal(out.reshape(-1, SIDE, SIDE), np.concatenate(expected))


def test_chunks_and_threads_do_not_change_the_result(monkeypatch):
    pixels, y = blobs(50).reshape(50, -1), np.arange(50)
    whole, _ = augment.augment_training_set(pixels, y, settings())
    monkeypatch.setattr(augment, "CHUNK", 7)
    monkeypatch.setattr(augment, "WORKERS", 3)
    chunked, _ = augment.augment_training_set(pixels, y, settings())
    np.testing.assert_array_equal(chunked, whole)


@pytest.mark.parametrize("recipe", params.RECIPES)
def test_zero_knobs_are_the_identity(recipe):
    images = np.random.default_rng(1).integers(0, 256, size=(8, SIDE, SIDE), dtype=np.uint8)
    rng = np.random.default_rng(0)
    out = augment.augment_images(images, recipe, rng, translate=0.0, rotate=0.0, zoom=0.0)
    np.testing.assert_array_equal(out, images)


def test_a_known_shift_moves_the_mass_centre_by_that_shift():
    images = blobs(3)
    identity = np.broadcast_to(np.eye(2, dtype=np.float32), (1, 3, 2, 2))
    # The output reads its pixel p at p - shift: content moves by +shift.
    shift = np.array([2.0, -3.0], np.float32)
    out = augment.warp(images, identity, np.broadcast_to(-shift, (1, 3, 2)))[0]
    for before, after in zip(images, out):
        np.testing.assert_allclose(mass_centre(after) - mass_centre(before), shift, atol=1e-9)
        np.testing.assert_array_equal(after[5:11, 1:5], before[3:9, 4:8])


def test_a_half_pixel_shift_blends_neighbours_bilinearly():
    image = np.zeros((1, SIDE, SIDE), np.uint8)
    image[0, 5, 5] = 200
    identity = np.eye(2, dtype=np.float32)[None, None]
    out = augment.warp(image, identity, np.array([[[0.0, 0.5]]], np.float32))[0, 0]
    assert out[5, 4] == 100 and out[5, 5] == 100 and out.sum() == 200


def test_random_translation_stays_within_its_range():
    images = blobs(200)
    rng = np.random.default_rng(5)
    # translate+zoom with zoom 0 is a pure translation of up to 0.1 * 12 = 1.2 pixels per axis.
    out = augment.augment_images(images, "translate+zoom", rng, translate=0.1, rotate=0.0, zoom=0.0)
    moves = np.array([mass_centre(a) - mass_centre(b) for a, b in zip(out, images)])
    assert np.abs(moves).max() <= 1.2 + 0.05
    assert np.abs(moves).max() > 0.8
    assert abs(moves.mean()) < 0.15


def test_rotation_by_a_quarter_turn_matches_rot90():
    image = np.random.default_rng(2).integers(0, 256, size=(1, SIDE, SIDE), dtype=np.uint8)
    matrix = np.array([[0.0, 1.0], [-1.0, 0.0]], np.float32)  # output (r, c) reads source (c, S-1-r)
    offset = np.array([0.0, SIDE - 1.0], np.float32)
    out = augment.warp(image, matrix[None, None], offset[None, None])[0, 0]
    np.testing.assert_array_equal(out, np.rot90(image[0]))


def test_warp_matches_scipy_bilinear_with_zero_fill():
    images = np.random.default_rng(3).integers(0, 256, size=(30, SIDE, SIDE), dtype=np.uint8)
    rng = np.random.default_rng(4)
    matrices, offsets = augment.draw_transforms(
        "translate+zoom+rotate", 30, SIDE, rng, translate=0.2, rotate=0.1, zoom=0.3
    )
    out = augment.warp(images, matrices[None], offsets[None])[0]
    for image, matrix, offset, warped in zip(images, matrices, offsets, out):
        expected = ndimage.affine_transform(
            image.astype(np.float64), matrix.astype(np.float64), offset.astype(np.float64),
            order=1, mode="grid-constant", cval=0.0,
        )
        # Equal up to float32 rounding at exact halves.
        assert np.abs(warped.astype(int) - np.floor(expected + 0.5)).max() <= 1


def test_values_stay_uint8_and_the_fill_is_black():
    images = np.full((40, SIDE, SIDE), 255, np.uint8)
    rng = np.random.default_rng(8)
    out = augment.augment_images(images, "translate+zoom+rotate", rng, translate=0.2, rotate=0.25, zoom=0.5)
    assert out.dtype == np.uint8 and out.shape == images.shape
    assert out.max() == 255 and out.min() == 0
    assert (out == 0).any(axis=(1, 2)).mean() > 0.5  # most maps pull in some of the outside


def test_far_reaching_maps_read_zero():
    images = np.full((2, SIDE, SIDE), 255, np.uint8)
    identity = np.broadcast_to(np.eye(2, dtype=np.float32), (1, 2, 2, 2))
    out = augment.warp(images, identity, np.full((1, 2, 2), 1000.0, np.float32))
    assert not out.any()


def test_bad_inputs_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="recipe"):
        augment.augment_images(blobs(2), "flip", rng, translate=0.1, rotate=0.1, zoom=0.1)
    with pytest.raises(ValueError, match="uint8"):
        augment.augment_images(blobs(2).astype(np.float32), "translate+zoom", rng, translate=0.1, rotate=0, zoom=0)
    with pytest.raises(ValueError, match="square"):
        augment.augment_training_set(np.zeros((2, 10), np.uint8), np.zeros(2), settings())
    with pytest.raises(ValueError, match="one label per row"):
        augment.augment_training_set(np.zeros((2, 16), np.uint8), np.zeros(3), settings())


@pytest.fixture()
def stage_dir(tmp_path, monkeypatch):
    """A project dir with params.yaml, 40 clean rows and a split whose val rows carry label 99."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    images = blobs(40).reshape(40, -1)
    y = np.arange(40, dtype=np.int64) % 5
    val = np.arange(0, 40, 4)
    y[val] = 99
    train = np.setdiff1d(np.arange(40), val)
    files.save_npz(paths.CLEAN_TRAIN, pixels=images, y=y, lines=np.arange(2, 42))
    files.save_npz(paths.SPLIT, train=train, val=val)
    return tmp_path


def set_augment(**knobs) -> None:
    raw = yaml.safe_load(open(params.PARAMS_FILE))
    raw["augment"].update(knobs)
    with open(params.PARAMS_FILE, "w") as handle:
        yaml.safe_dump(raw, handle, sort_keys=False)


def test_main_augments_only_the_training_rows(stage_dir, capsys):
    augment.main()
    written = files.load_npz(paths.AUGMENTED_TRAIN)
    clean = files.load_npz(paths.CLEAN_TRAIN)
    train = files.load_npz(paths.SPLIT)["train"]
    assert written["pixels"].shape == (300, SIDE * SIDE) and written["pixels"].dtype == np.uint8
    assert written["y"].dtype == np.int64
    assert 99 not in written["y"]
    np.testing.assert_array_equal(written["pixels"][:30], clean["pixels"][train])
    np.testing.assert_array_equal(written["y"], np.tile(clean["y"][train], 10))
    assert "30 training rows -> 300 rows" in capsys.readouterr().out


def test_main_follows_params(stage_dir):
    set_augment(copies=1, recipes=["translate+rotate"])
    augment.main()
    assert files.load_npz(paths.AUGMENTED_TRAIN)["pixels"].shape == (60, SIDE * SIDE)


def test_a_bad_recipe_is_refused_naming_the_key(stage_dir):
    set_augment(recipes=["translate+shear"])
    with pytest.raises(params.ParamsError, match=r"augment\.recipes.*translate\+shear"):
        augment.main()
    assert not paths.AUGMENTED_TRAIN.exists()


def test_a_missing_split_is_a_data_error(stage_dir):
    paths.SPLIT.unlink()
    with pytest.raises(augment.DataError, match="indices.npz"):
        augment.main()


def test_the_stage_runs_as_a_module_and_a_bad_param_exits_2(stage_dir):
    command = [sys.executable, "-m", "mnist_doe.augment"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert paths.AUGMENTED_TRAIN.exists()
    set_augment(zoom=1.5)
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("augment: error:") and "augment.zoom" in done.stderr


@pytest.mark.slow
def test_warp_matches_keras_affine_transform():
    keras = pytest.importorskip("keras")
    images = np.random.default_rng(6).integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    matrices, offsets = augment.draw_transforms(
        "translate+zoom+rotate", 40, 28, np.random.default_rng(7), translate=0.1, rotate=0.1, zoom=0.15
    )
    # Keras maps output (x, y) to (a0 x + a1 y + a2, b0 x + b1 y + b2): column first.
    transform = np.zeros((40, 8), np.float32)
    transform[:, :3] = np.column_stack([matrices[:, 1, 1], matrices[:, 1, 0], offsets[:, 1]])
    transform[:, 3:6] = np.column_stack([matrices[:, 0, 1], matrices[:, 0, 0], offsets[:, 0]])
    expected = keras.ops.image.affine_transform(
        images[..., None].astype(np.float32), transform, interpolation="bilinear", fill_mode="constant"
    )
    expected = np.floor(keras.ops.convert_to_numpy(expected)[..., 0] + 0.5)
    out = augment.warp(images, matrices[None], offsets[None])[0]
    assert np.abs(out.astype(int) - expected).max() <= 1
