"""One small builder per Keras family. Images arrive as uint8 pixel rows; the model scales them.

Keeping uint8 until the first layer means no float copy of the data set ever exists in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import tensorflow as tf
from keras import layers


@dataclass(frozen=True)
class Regularisation:
    """What every builder may add: dropout, L1/L2 kernel penalties, batch normalisation."""

    dropout: float = 0.0
    l1: float = 0.0
    l2: float = 0.0
    batch_norm: bool = False

    def penalty(self):
        return keras.regularizers.L1L2(l1=self.l1, l2=self.l2) if self.l1 or self.l2 else None


def _pixels(n_pixels: int) -> list:
    return [keras.Input(shape=(n_pixels,), dtype="uint8"), layers.Rescaling(1.0 / 255)]


def _softmax(n_classes: int):
    # float32 even under mixed precision: softmax and loss lose too much in float16
    return layers.Dense(n_classes, activation="softmax", dtype="float32")


def _relu(layer_type, width, reg: Regularisation, **options) -> list:
    """A dense or convolution layer with ReLU, batch-normalised before the ReLU when asked for."""
    if reg.batch_norm:
        return [
            layer_type(width, kernel_regularizer=reg.penalty(), **options),
            layers.BatchNormalization(),
            layers.Activation("relu"),
        ]
    return [layer_type(width, activation="relu", kernel_regularizer=reg.penalty(), **options)]


def _head(n_classes: int, reg: Regularisation, units: int = 128) -> list:
    return [
        *_relu(layers.Dense, units, reg),
        layers.Dropout(reg.dropout),
        _softmax(n_classes),
    ]


def build_dense(n_pixels: int, n_classes: int, depth: int, nodes: int, reg: Regularisation) -> keras.Model:
    """`depth` ReLU layers of `nodes` units, each followed by dropout."""
    hidden = []
    for _ in range(depth):
        hidden += [*_relu(layers.Dense, nodes, reg), layers.Dropout(reg.dropout)]
    return keras.Sequential(
        [*_pixels(n_pixels), *hidden, _softmax(n_classes)]
    )


def build_cnn(n_pixels: int, n_classes: int, depth: int, nodes: int, reg: Regularisation) -> keras.Model:
    """`depth` blocks of 3x3 same-padded convolution (`nodes` filters) and 2x2 max-pooling."""
    side = int(round(n_pixels**0.5))
    blocks = []
    for _ in range(depth):
        blocks += [*_relu(layers.Conv2D, nodes, reg, kernel_size=3, padding="same"), layers.MaxPooling2D(2, padding="same")]
    return keras.Sequential(
        [*_pixels(n_pixels), layers.Reshape((side, side, 1)), *blocks, layers.Flatten(), *_head(n_classes, reg)]
    )


def build_lstm(n_pixels: int, n_classes: int, depth: int, nodes: int, reg: Regularisation) -> keras.Model:
    """`depth` stacked LSTMs of `nodes` units reading the image one row per time step."""
    side = int(round(n_pixels**0.5))
    # unrolled, a CPU runs it ~1.3x faster; unrolling would keep a GPU from its one cuDNN kernel
    unroll = not tf.config.list_physical_devices("GPU")
    recurrent = [
        layers.LSTM(
            nodes, return_sequences=i < depth - 1, unroll=unroll, kernel_regularizer=reg.penalty()
        )
        for i in range(depth)
    ]
    return keras.Sequential(
        [*_pixels(n_pixels), layers.Reshape((side, side)), *recurrent, *_head(n_classes, reg)]
    )


BUILDERS = {"dense": build_dense, "cnn": build_cnn, "lstm": build_lstm}


def optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    return {
        "sgd": keras.optimizers.SGD,
        "adam": keras.optimizers.Adam,
        "rmsprop": keras.optimizers.RMSprop,
        "nadam": keras.optimizers.Nadam,
    }[name](learning_rate=learning_rate)


def learning_rate_at(epoch: int, base: float, schedule: str, rate: float, every: int) -> float:
    """The learning rate of 0-based `epoch`: constant, stepped down, or decaying smoothly."""
    if schedule == "step":
        return base * rate ** math.floor(epoch / every)
    if schedule == "exponential":
        return base * rate ** (epoch / every)
    return base
