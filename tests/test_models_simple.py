"""Cells of one depth and one width build what they built before per-layer keys existed.

`legacy` below is the builders' code as it stood before (commit 90f3346), kept here as the
reference: a cell parsed from params.yaml syntax must give the same layers (every layer's
class, name and whole configuration), the same parameter counts and, for the same seed, the
same initial weights. The counts and layer lists recorded from that code are asserted too.
"""

from __future__ import annotations

import copy
import json

import keras
import numpy as np
import pytest
import yaml
from conftest import DEFAULT_PARAMS
from keras import layers

from mnist_doe.common import params
from mnist_doe.engine import models


class legacy:  # noqa: N801  (a namespace: the builders as they were)
    @staticmethod
    def penalty(l1, l2):
        return keras.regularizers.L1L2(l1=l1, l2=l2) if l1 or l2 else None

    @staticmethod
    def relu(layer_type, width, t, **options):
        if t.batch_norm:
            return [layer_type(width, kernel_regularizer=legacy.penalty(t.l1, t.l2), **options),
                    layers.BatchNormalization(), layers.Activation("relu")]
        return [layer_type(width, activation="relu", kernel_regularizer=legacy.penalty(t.l1, t.l2), **options)]

    @staticmethod
    def head(n_classes, t):
        return [*legacy.relu(layers.Dense, 128, t), layers.Dropout(t.dropout),
                layers.Dense(n_classes, activation="softmax", dtype="float32")]

    @staticmethod
    def pixels(n_pixels):
        return [keras.Input(shape=(n_pixels,), dtype="uint8"), layers.Rescaling(1.0 / 255)]

    @staticmethod
    def dense(n_pixels, n_classes, depth, nodes, t):
        hidden = []
        for _ in range(depth):
            hidden += [*legacy.relu(layers.Dense, nodes, t), layers.Dropout(t.dropout)]
        return keras.Sequential([*legacy.pixels(n_pixels), *hidden,
                                 layers.Dense(n_classes, activation="softmax", dtype="float32")])

    @staticmethod
    def cnn(n_pixels, n_classes, depth, nodes, t):
        side = int(round(n_pixels**0.5))
        blocks = []
        for _ in range(depth):
            blocks += [*legacy.relu(layers.Conv2D, nodes, t, kernel_size=3, padding="same"),
                       layers.MaxPooling2D(2, padding="same")]
        return keras.Sequential([*legacy.pixels(n_pixels), layers.Reshape((side, side, 1)), *blocks,
                                 layers.Flatten(), *legacy.head(n_classes, t)])

    @staticmethod
    def lstm(n_pixels, n_classes, depth, nodes, t):
        import tensorflow as tf

        side = int(round(n_pixels**0.5))
        unroll = not tf.config.list_physical_devices("GPU")
        recurrent = [layers.LSTM(nodes, return_sequences=i < depth - 1, unroll=unroll,
                                 kernel_regularizer=legacy.penalty(t.l1, t.l2)) for i in range(depth)]
        return keras.Sequential([*legacy.pixels(n_pixels), layers.Reshape((side, side)), *recurrent,
                                 *legacy.head(n_classes, t)])


def cell(text: str) -> params.Cell:
    raw = copy.deepcopy(DEFAULT_PARAMS)
    raw["doe"] = {"cells": {"c": yaml.safe_load(text)}}
    return params.parse(raw).cells["c"]


def built(make, seed: int = 42) -> keras.Model:
    keras.backend.clear_session()  # layer names from zero, as the train stage builds
    keras.utils.set_random_seed(seed)
    return make()


def described(model: keras.Model) -> list:
    return [(type(layer).__name__, layer.name, json.dumps(layer.get_config(), sort_keys=True, default=str))
            for layer in model.layers]


# recorded from the builders before the change: counts, and the layer classes with the width
RECORDED = {
    "{family: dense, layers: 5, nodes: 200}": (319_810, ["Rescaling"] + ["Dense:200", "Dropout"] * 5 + ["Dense:10"]),
    "{family: cnn, layers: 2, nodes: 28}": (184_398, ["Rescaling", "Reshape"] + ["Conv2D:28", "MaxPooling2D"] * 2
                                            + ["Flatten", "Dense:128", "Dropout", "Dense:10"]),
    "{family: lstm, layers: 2, nodes: 100}": (146_218, ["Rescaling", "Reshape", "LSTM:100", "LSTM:100",
                                                        "Dense:128", "Dropout", "Dense:10"]),
}


@pytest.mark.parametrize("text", list(RECORDED) + [
    "{family: dense, layers: 2, nodes: 16, batch_norm: true, l1: 0.00001, l2: 0.0001, dropout: 0.3}",
    "{family: cnn, layers: 2, nodes: 8, batch_norm: true, l1: 0.00001, l2: 0.0001}",
    "{family: lstm, layers: 1, nodes: 16, batch_norm: true, l2: 0.0001, dropout: 0.1}",
    "{family: cnn, layers: 3, nodes: 28, dropout: 0.5}",
])
def test_a_simple_cell_builds_what_it_built_before(text):
    c = cell(text)
    ours = built(lambda: models.build(c.family, 784, 10, c.net))
    before = built(lambda: getattr(legacy, c.family)(784, 10, c.layers, c.nodes, c.train))
    assert described(ours) == described(before)
    assert ours.count_params() == before.count_params()
    for a, b in zip(ours.get_weights(), before.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    if text in RECORDED:
        count, kinds = RECORDED[text]
        assert ours.count_params() == count
        widths = [f"{type(x).__name__}:{x.units if hasattr(x, 'units') else x.filters}"
                  if hasattr(x, "units") or hasattr(x, "filters") else type(x).__name__ for x in ours.layers]
        assert widths == kinds


def test_the_old_builder_signature_still_builds_the_same_model():
    """BUILDERS[family](n_pixels, n_classes, depth, nodes, Regularisation) (benches, tests)."""
    reg = models.Regularisation(dropout=0.2, l2=1e-4, batch_norm=True)
    for family in ("dense", "cnn", "lstm"):
        old = built(lambda: getattr(legacy, family)(784, 10, 2, 12, params.TrainParams(dropout=0.2, l2=1e-4, batch_norm=True)))
        new = built(lambda: models.BUILDERS[family](784, 10, 2, 12, reg))
        assert described(new) == described(old)


def test_a_dropout_of_zero_builds_no_layer_and_the_same_weights():
    """A Dropout layer of rate 0 was the identity: the net leaves it out, nothing else moves."""
    c = cell("{family: dense, layers: 2, nodes: 16, dropout: 0}")
    ours = built(lambda: models.build(c.family, 784, 10, c.net))
    before = built(lambda: legacy.dense(784, 10, 2, 16, c.train))
    assert [type(x).__name__ for x in ours.layers] == ["Rescaling", "Dense", "Dense", "Dense"]
    assert "Dropout" in [type(x).__name__ for x in before.layers]
    for a, b in zip(ours.get_weights(), before.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).integers(0, 256, (5, 784), dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(ours(x, training=True)), np.asarray(before(x, training=True)))
