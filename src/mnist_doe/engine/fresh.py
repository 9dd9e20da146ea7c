"""Fresh augmentation (`augment.mode: fresh`): a new random transform of every image every
epoch, drawn here with the ranges of Keras' `ImageDataGenerator` and applied by the train
stage to each batch inside its graph (`loop.warp_batch`).

The augment stage writes the training rows unaugmented with these settings beside them
(`augment.fresh_settings`). Here under engine/, since the train stage depends on this code.
NumPy only.
"""

from __future__ import annotations

import numpy as np


def draw_fresh_transforms(
    count: int,
    side: int,
    rng: np.random.Generator,
    *,
    rotation_range: float,
    zoom_range: float,
    width_shift_range: float,
    height_shift_range: float,
    horizontal_flip: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """`count` random maps of Keras' `ImageDataGenerator(rotation_range, zoom_range,
    width_shift_range, height_shift_range)` for `side` x `side` images, in the form
    `augment.draw_transforms` returns (output pixel p reads the source at matrices @ p + offsets,
    (row, column) order).

    As `ImageDataGenerator.get_random_transform` and `apply_affine_transform` compose them: an
    angle uniform in +-rotation_range degrees, shifts uniform in +-range * side pixels, a zoom
    per axis uniform in [1 - zoom_range, 1 + zoom_range] (above 1 zooms out), the matrix
    rotation @ shift @ zoom about the image centre. ImageDataGenerator draws its column shift
    from height_shift_range and its row shift from width_shift_range (its `tx` moves columns);
    here width_shift_range moves columns, as its name says (the same maps when both ranges and
    the sides are equal).

    `horizontal_flip`: each image mirrored left to right with probability 1/2, after the
    rest of the map, as ImageDataGenerator flips the transformed image; drawn after the
    other draws, so the angles, shifts and zooms are those drawn without it."""
    theta = np.deg2rad(rng.uniform(-rotation_range, rotation_range, size=count))
    tx = rng.uniform(-width_shift_range, width_shift_range, size=count) * side  # moves columns
    ty = rng.uniform(-height_shift_range, height_shift_range, size=count) * side  # moves rows
    zoom = rng.uniform(1 - zoom_range, 1 + zoom_range, size=(count, 2))
    cos, sin = np.cos(theta), np.sin(theta)
    # ImageDataGenerator's 3x3 matrices in its own (x, y) order, which for a square image
    # (where its centre offset is the same on both axes) is (column, row)
    rotation = np.zeros((count, 3, 3))
    rotation[:, 0, 0], rotation[:, 0, 1], rotation[:, 1, 0], rotation[:, 1, 1] = cos, -sin, sin, cos
    rotation[:, 2, 2] = 1
    shift = np.broadcast_to(np.eye(3), (count, 3, 3)).copy()
    shift[:, 0, 2], shift[:, 1, 2] = tx, ty
    scale = np.zeros((count, 3, 3))
    scale[:, 0, 0], scale[:, 1, 1], scale[:, 2, 2] = zoom[:, 0], zoom[:, 1], 1
    matrix = rotation @ shift @ scale
    centre = side / 2 - 0.5
    to_centre, back = np.eye(3), np.eye(3)
    to_centre[:2, 2], back[:2, 2] = centre, -centre
    matrix = to_centre @ matrix @ back
    matrix = matrix[:, [1, 0, 2]][:, :, [1, 0, 2]]  # (column, row) -> (row, column)
    if horizontal_flip:
        # output pixel (r, c) of the mirrored image is pixel (r, side - 1 - c) of the mapped one
        flip = rng.random(count) < 0.5
        mirror = np.eye(3)
        mirror[1, 1], mirror[1, 2] = -1, side - 1
        matrix[flip] = matrix[flip] @ mirror
    return matrix[:, :2, :2].astype(np.float32), matrix[:, :2, 2].astype(np.float32)


def epoch_transforms(count: int, side: int, fresh: dict, seed: int, epoch: int) -> np.ndarray:
    """The fresh transforms of 0-based `epoch` for `count` images, one per image, as the
    8-vectors of TensorFlow's ImageProjectiveTransformV3 (float32, (count, 8)).

    A function of (the augment seed, the run's `seed`, `epoch`) only, so a resumed run draws
    what an uninterrupted one draws, and every epoch draws anew."""
    rng = np.random.default_rng([int(fresh["seed"]), int(seed), int(epoch)])
    matrices, offsets = draw_fresh_transforms(
        count, side, rng, rotation_range=fresh["rotation_range"], zoom_range=fresh["zoom_range"],
        width_shift_range=fresh["width_shift_range"], height_shift_range=fresh["height_shift_range"],
        horizontal_flip=bool(fresh.get("horizontal_flip", False)),
    )
    return projective(matrices, offsets)


def projective(matrices: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(row, column) maps as ImageProjectiveTransformV3's vectors, which map output (x, y) =
    (column, row) to the source point (a0 x + a1 y + a2, b0 x + b1 y + b2)."""
    out = np.zeros((len(matrices), 8), np.float32)
    out[:, 0], out[:, 1], out[:, 2] = matrices[:, 1, 1], matrices[:, 1, 0], offsets[:, 1]
    out[:, 3], out[:, 4], out[:, 5] = matrices[:, 0, 1], matrices[:, 0, 0], offsets[:, 0]
    return out
