"""One small builder per Keras family. Images arrive as uint8 pixel rows; the model scales them.

Keeping uint8 until the first layer means no float copy of the data set ever exists in memory.
"""

from __future__ import annotations

import keras
from keras import layers


def _pixels(n_pixels: int) -> list:
    return [keras.Input(shape=(n_pixels,), dtype="uint8"), layers.Rescaling(1.0 / 255)]


def build_dense(n_pixels: int, n_classes: int, depth: int, nodes: int, dropout: float) -> keras.Model:
    """`depth` ReLU layers of `nodes` units, each followed by dropout."""
    hidden = []
    for _ in range(depth):
        hidden += [layers.Dense(nodes, activation="relu"), layers.Dropout(dropout)]
    return keras.Sequential(
        [*_pixels(n_pixels), *hidden, layers.Dense(n_classes, activation="softmax")]
    )


def build_cnn(n_pixels: int, n_classes: int, depth: int, nodes: int, dropout: float) -> keras.Model:
    """`depth` blocks of 3x3 same-padded convolution (`nodes` filters) and 2x2 max-pooling."""
    side = int(round(n_pixels**0.5))
    blocks = []
    for _ in range(depth):
        blocks += [
            layers.Conv2D(nodes, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(2, padding="same"),
        ]
    return keras.Sequential(
        [
            *_pixels(n_pixels),
            layers.Reshape((side, side, 1)),
            *blocks,
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(dropout),
            layers.Dense(n_classes, activation="softmax"),
        ]
    )


def build_lstm(n_pixels: int, n_classes: int, depth: int, nodes: int, dropout: float) -> keras.Model:
    """`depth` stacked LSTMs of `nodes` units reading the image one row per time step."""
    side = int(round(n_pixels**0.5))
    recurrent = [layers.LSTM(nodes, return_sequences=i < depth - 1) for i in range(depth)]
    return keras.Sequential(
        [
            *_pixels(n_pixels),
            layers.Reshape((side, side)),
            *recurrent,
            layers.Dense(128, activation="relu"),
            layers.Dropout(dropout),
            layers.Dense(n_classes, activation="softmax"),
        ]
    )


BUILDERS = {"dense": build_dense, "cnn": build_cnn, "lstm": build_lstm}


def optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    return {
        "sgd": keras.optimizers.SGD,
        "adam": keras.optimizers.Adam,
        "rmsprop": keras.optimizers.RMSprop,
        "nadam": keras.optimizers.Nadam,
    }[name](learning_rate=learning_rate)
