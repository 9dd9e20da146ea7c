"""The augment stage: random translations, zooms and rotations of the training split.

Each recipe names Keras preprocessing layers applied in order (translate, then zoom, then
rotate) with the semantics of RandomTranslation, RandomZoom and RandomRotation: shifts
uniform in +-translate*side pixels per axis, independent height and width scales in
[1 - zoom, 1 + zoom] (above 1 zooms out), angles uniform in +-rotate*2*pi, all about the
image centre, bilinear, fill 0. The layers of a recipe are composed into one affine map
per image and each image is resampled once, so a copy is interpolated once, not once per
layer. Points beyond the frame read the fill value 0; near the edge the bilinear blend
mixes the edge pixel with that fill.

Reads the clean training rows and the split; writes the original training rows followed by
`copies` augmented copies per recipe, as uint8, with their labels. Validation rows are never
read into the augmented set.

With `mode: fresh` the stage writes the training rows unaugmented, with the settings of the
fresh augmentation beside them (`fresh`, JSON), and the train stage draws new transforms for
every image every epoch (`engine/fresh.py`), with the ranges of Keras' ImageDataGenerator:
`rotation_range` in degrees, `zoom_range`, `width_shift_range` and `height_shift_range` as
fractions of the side, `fill_mode` nearest or constant (0), and `horizontal_flip` (half the
images mirrored left to right, as ImageDataGenerator's: for clothes, not for digits or
letters, which a mirror turns into other signs). The train stage depends on the
written file, so a change of these settings retrains every cell.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from .common import errors, files, params, paths
from .common.errors import DataError
from .common.progress import progress
from .common.words import plural

# Images per vectorised step: keeps the float32 working arrays of one step in CPU cache.
CHUNK = 256
# Threads sharing the chunks; NumPy releases the GIL inside each array operation.
WORKERS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def draw_transforms(
    recipe: str,
    count: int,
    side: int,
    rng: np.random.Generator,
    *,
    translate: float,
    rotate: float,
    zoom: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw `count` random maps of `recipe` for `side` x `side` images.

    Returns float32 `matrices` (count, 2, 2) and `offsets` (count, 2) in (row, column)
    order, mapping an output pixel p to the source point matrices @ p + offsets.
    """
    if recipe not in params.RECIPES:
        raise ValueError(f"unknown augmentation recipe {recipe!r}; choose from {', '.join(params.RECIPES)}")
    steps = recipe.split("+")
    shift = rng.uniform(-translate * side, translate * side, size=(count, 2))
    scale = rng.uniform(1 - zoom, 1 + zoom, size=(count, 2)) if "zoom" in steps else np.ones((count, 2))
    turn = rotate * 2 * np.pi
    angle = rng.uniform(-turn, turn, size=count) if "rotate" in steps else np.zeros(count)

    # Output p samples the rotated image at R(p-c)+c, which samples the zoomed image at
    # Z R (p-c) + c, which samples the original at that point minus the shift.
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.stack([np.stack([cos, sin], axis=-1), np.stack([-sin, cos], axis=-1)], axis=-2)
    matrices = scale[:, :, None] * rotation
    centre = (side - 1) / 2
    offsets = centre - matrices.sum(axis=2) * centre - shift
    return matrices.astype(np.float32), offsets.astype(np.float32)


def warp(
    images: np.ndarray, matrices: np.ndarray, offsets: np.ndarray, out: np.ndarray | None = None,
    made: Callable[[int], object] | None = None,
) -> np.ndarray:
    """Resample uint8 `images` (N, S, S) through K inverse affine maps each, bilinear, fill 0.

    `matrices` (K, N, 2, 2) and `offsets` (K, N, 2): output pixel p of map k of image i is
    read at the source point matrices[k, i] @ p + offsets[k, i], in (row, column) order.
    Returns uint8 (K, N, S, S), written into `out` when given. `made`, when given, is called
    with the number of images finished after each chunk (one thread at a time).
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be uint8 (N, S, S), got {images.dtype} {images.shape}")
    count, side = images.shape[0], images.shape[1]
    matrices = np.asarray(matrices, np.float32)
    offsets = np.asarray(offsets, np.float32)
    maps = matrices.shape[0]
    if matrices.shape != (maps, count, 2, 2) or offsets.shape != (maps, count, 2):
        raise ValueError(
            f"maps must be (K, {count}, 2, 2) and (K, {count}, 2), got {matrices.shape} {offsets.shape}"
        )
    if out is None:
        out = np.empty((maps, count, side, side), np.uint8)
    elif out.shape != (maps, count, side, side) or out.dtype != np.uint8:
        raise ValueError(f"out must be uint8 {(maps, count, side, side)}, got {out.dtype} {out.shape}")

    starts = range(0, count, CHUNK)
    workers = max(1, min(len(starts), WORKERS))
    lock = threading.Lock()

    def run(first: int) -> None:
        # Chunks are independent, so the result does not depend on how threads share them.
        work = _Work(min(CHUNK, count), side)
        for start in starts[first::workers]:
            stop = min(start + CHUNK, count)
            quads = _quads(images[start:stop])
            for k in range(maps):
                _warp_chunk(quads, matrices[k, start:stop], offsets[k, start:stop], out[k, start:stop], work)
            if made is not None:
                with lock:
                    made(maps * (stop - start))

    if workers == 1:
        run(0)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, range(workers)))
    return out


def augment_images(
    images: np.ndarray, recipe: str, rng: np.random.Generator, *, translate: float, rotate: float, zoom: float
) -> np.ndarray:
    """One randomly transformed copy of each uint8 image (N, S, S), drawn from `rng`."""
    images = np.asarray(images)
    matrices, offsets = draw_transforms(
        recipe, images.shape[0], images.shape[-1], rng, translate=translate, rotate=rotate, zoom=zoom
    )
    return warp(images, matrices[None], offsets[None])[0]


def augment_training_set(
    pixels: np.ndarray, y: np.ndarray, settings: params.AugmentParams
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of `pixels` (N, P uint8, P a square) followed by `settings.copies` augmented
    copies per recipe, in recipe order, with `y` repeated to match; seeded by `settings.seed`.

    Equals calling `augment_images` once per recipe and copy with one generator. Shows a
    progress bar of the images made.
    """
    pixels = np.asarray(pixels)
    y = np.asarray(y)
    if pixels.dtype != np.uint8 or pixels.ndim != 2:
        raise ValueError(f"pixels must be uint8 (N, P), got {pixels.dtype} {pixels.shape}")
    count, size = pixels.shape
    side = math.isqrt(size)
    if side * side != size:
        raise ValueError(f"pixels per row must be a square number, got {size}")
    if y.shape != (count,):
        raise ValueError(f"y must hold one label per row: {y.shape} for {plural(count, 'row')}")

    rng = np.random.default_rng(settings.seed)
    draws = [
        draw_transforms(
            recipe, count, side, rng, translate=settings.translate, rotate=settings.rotate, zoom=settings.zoom
        )
        for recipe in settings.recipes
        for _ in range(settings.copies)
    ]
    maps = len(draws)
    out = np.empty(((maps + 1) * count, size), np.uint8)
    out[:count] = pixels
    if maps:
        matrices = np.stack([m for m, _ in draws])
        offsets = np.stack([o for _, o in draws])
        copies = out[count:].reshape(maps, count, side, side)
        with progress(total=maps * count, desc=f"augmenting {plural(count, 'training image')}", unit="image") as bar:
            warp(pixels.reshape(count, side, side), matrices, offsets, out=copies, made=bar.update)
    return out, np.tile(y, maps + 1)


FRESH_KEYS = ("rotation_range", "zoom_range", "width_shift_range", "height_shift_range", "fill_mode", "seed")


def fresh_settings(settings: params.AugmentParams) -> dict:
    """What the train stage needs of `settings` to draw fresh transforms (written beside the rows)."""
    fresh = {key: getattr(settings, key) for key in FRESH_KEYS}
    if settings.horizontal_flip:  # written only when on: the files of runs without it stay as they were
        fresh["horizontal_flip"] = True
    return fresh


class _Work:
    """Scratch arrays for one chunk, reused across chunks and maps."""

    def __init__(self, count: int, side: int):
        shape = (count, side, side)
        self.row, self.col, self.a, self.b, self.c = (np.empty(shape, np.float32) for _ in range(5))
        self.index = np.empty(shape, np.intp)
        self.packed = np.empty(shape, np.uint32)
        self.byte = np.empty(shape, np.uint32)


def _quads(images: np.ndarray) -> np.ndarray:
    """Pack each pixel's 2x2 bilinear neighbourhood into one uint32, frame padded with 0.

    Flat array over (N, S+2, S+2): entry (y, x) holds padded pixels (y, x), (y, x+1),
    (y+1, x), (y+1, x+1) in bytes 0..3; padded (y, x) is image (y-1, x-1).
    """
    count, side = images.shape[0], images.shape[1]
    padded = np.zeros((count, side + 3, side + 3), np.uint32)
    padded[:, 1 : side + 1, 1 : side + 1] = images
    quads = padded[:, :-1, :-1] | (padded[:, :-1, 1:] << 8)
    quads |= padded[:, 1:, :-1] << 16
    quads |= padded[:, 1:, 1:] << 24
    return quads.reshape(-1)


def _warp_chunk(
    quads: np.ndarray, matrices: np.ndarray, offsets: np.ndarray, out: np.ndarray, work: _Work
) -> None:
    """Bilinear resampling of one chunk through one map per image, into uint8 `out`."""
    count, side = out.shape[0], out.shape[1]
    stride = side + 2
    grid = np.arange(side, dtype=np.float32)
    row, col, a, b, c = (buffer[:count] for buffer in (work.row, work.col, work.a, work.b, work.c))
    index, packed, byte = work.index[:count], work.packed[:count], work.byte[:count]

    # Source coordinates in the padded frame (+1), clamped to its zero border so that any
    # map, however far it reaches, reads 0 outside the image.
    for axis, coordinate in enumerate((row, col)):
        along_rows = matrices[:, axis, 0, None] * grid + (offsets[:, axis, None] + 1)
        along_cols = matrices[:, axis, 1, None] * grid
        np.add(along_rows[:, :, None], along_cols[:, None, :], out=coordinate)
        np.clip(coordinate, 0, side + 1, out=coordinate)

    # Upper-left neighbour (integers, exact in float32 at these sizes) and the weights.
    np.floor(row, out=a)
    np.floor(col, out=b)
    row -= a
    col -= b
    a *= stride
    a += b
    a += (np.arange(count, dtype=np.float32) * (stride * stride))[:, None, None]
    np.copyto(byte.view(np.int32), a, casting="unsafe")  # float32 -> int32 -> intp beats a direct cast
    np.copyto(index, byte.view(np.int32))
    np.take(quads, index, out=packed, mode="wrap")  # in range by construction; wrap skips the check

    # Blend the upper pair (into a) and the lower pair (into b) across, then down.
    _unpack(packed, 0, byte, a)
    _unpack(packed, 1, byte, c)
    c -= a
    c *= col
    a += c
    _unpack(packed, 2, byte, b)
    _unpack(packed, 3, byte, c)
    c -= b
    c *= col
    b += c
    b -= a
    b *= row
    a += b
    a += 0.5  # round half up on the cast; values lie in [0, 255]
    np.copyto(out, a, casting="unsafe")


def _unpack(packed: np.ndarray, byte_number: int, scratch: np.ndarray, into: np.ndarray) -> None:
    """Copy byte `byte_number` of each uint32 in `packed` into float32 `into`."""
    source = packed
    if byte_number:
        source = np.right_shift(packed, 8 * byte_number, out=scratch)
    if byte_number < 3:
        source = np.bitwise_and(source, 0xFF, out=scratch)
    np.copyto(into, source, casting="unsafe")


def main() -> None:
    started = time.perf_counter()
    settings = params.load().augment
    clean = _load(paths.CLEAN_TRAIN, ("pixels", "y"))
    split = _load(paths.SPLIT, ("train",))
    train = split["train"]
    rows = len(clean["y"])
    if train.size and (train.min() < 0 or train.max() >= rows):
        raise DataError(
            f"{paths.SPLIT}: 'train' holds indices outside the {rows} rows of {paths.CLEAN_TRAIN}"
        )
    if settings.mode == "fresh":
        # the rows as they are: the train stage transforms every image anew every epoch
        pixels, y = clean["pixels"][train], clean["y"][train].astype(np.int64)
        files.save_npz(paths.AUGMENTED_TRAIN, pixels=pixels, y=y, source=train.astype(np.int64),
                       fresh=np.array(json.dumps(fresh_settings(settings))))
        print(f"augment: {plural(len(train), 'training row')}, transformed afresh every epoch by the train stage")
        return
    pixels, labels = augment_training_set(clean["pixels"][train], clean["y"][train], settings)
    # which clean row each augmented row came from, so a fold fits only on its own rows
    source = np.tile(train, len(pixels) // max(len(train), 1)).astype(np.int64)
    files.save_npz(paths.AUGMENTED_TRAIN, pixels=pixels, y=labels.astype(np.int64), source=source)
    seconds = time.perf_counter() - started
    print(f"augment: {plural(len(train), 'training row')} -> {plural(len(pixels), 'row')} in {seconds:.1f} s")


def _load(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path}: not found (run the earlier stages first: dvc repro)")
    arrays = files.load_npz(path)
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise DataError(f"{path}: missing array '{missing[0]}'")
    return arrays


if __name__ == "__main__":
    errors.run_stage("augment", main)
