"""Every network the seed notebooks 002, 003 and 004 built, declared as a user writes it in
params.yaml, against the seed's architecture written out here with Keras layers.

How the two are compared: layer by layer, after what differs by design only. The project's
models take uint8 pixel rows and scale them in their first layer (Rescaling, then Reshape for
a cnn or lstm); a seed takes float images (002: Flatten and Rescaling for its dense nets,
Rescaling for its CNNs; 003 and 004 scale outside the model). These leading Rescaling /
Reshape / Flatten layers, which hold no weights, are left out on both sides, and so are
Dropout layers of rate 0 (seed 004's defaults build them; they are the identity, and the
project builds none). Everything else must match: the layer classes in order, each layer's
output shape and parameter count, the configuration that shapes its maths (units, filters,
kernel size, strides, padding, activation, pool size, dropout rate, regularisers, batch-norm
settings) and the model's total parameters, which must also be what the notebook printed
(its "Total params" lines) where it printed one.
"""

from __future__ import annotations

import copy
import json

import keras
import numpy as np
import pytest
import yaml
from conftest import DEFAULT_PARAMS
from keras import layers as L

from mnist_doe.common import params
from mnist_doe.engine import models

# the settings a layer's maths depends on (names, dtypes and initialisers aside)
CONFIG_KEYS = ("units", "filters", "kernel_size", "strides", "padding", "activation", "rate", "pool_size",
               "return_sequences", "kernel_regularizer", "activity_regularizer", "use_bias", "axis",
               "momentum", "epsilon", "center", "scale")
INPUT_PIPELINE = (L.Rescaling, L.Reshape, L.Flatten)


def cells_from(text: str) -> dict[str, params.Cell]:
    """The cells of a params.yaml fragment (a `train:` section and `doe: cells:`), checked by
    params.parse over the repository's params.yaml."""
    doc = yaml.safe_load(text)
    raw = copy.deepcopy(DEFAULT_PARAMS)
    raw["train"] = {**raw["train"], **doc.get("train", {})}
    raw["doe"] = doc["doe"]
    return params.parse(raw).cells


def layer_rows(model: keras.Model) -> list[tuple]:
    rows, started = [], False
    for layer in model.layers:
        if not started and isinstance(layer, INPUT_PIPELINE):
            continue
        started = True
        if isinstance(layer, L.Dropout) and layer.rate == 0:
            continue
        config = json.loads(json.dumps(layer.get_config(), default=str))
        settings = {k: config[k] for k in CONFIG_KEYS if k in config}
        for key in ("kernel_regularizer", "activity_regularizer"):
            if settings.get(key):  # the regulariser's class and strength
                settings[key] = (settings[key]["class_name"], settings[key]["config"])
        rows.append((type(layer).__name__, tuple(layer.output.shape), layer.count_params(), settings))
    return rows


def assert_same_network(ours: keras.Model, seed: keras.Model) -> None:
    mine, theirs = layer_rows(ours), layer_rows(seed)
    assert [r[0] for r in mine] == [r[0] for r in theirs]
    for i, (a, b) in enumerate(zip(mine, theirs)):
        assert a == b, f"layer {i} ({a[0]}): {a} != {b}"
    assert ours.count_params() == seed.count_params()


def relu(units, **kw):
    return L.Dense(units, activation="relu", **kw)


def conv(filters, kernel=3, padding="same"):
    return L.Conv2D(filters, kernel_size=kernel, padding=padding, activation="relu")


def seq(shape, *stack):
    return keras.Sequential([keras.Input(shape=shape), *stack])


L1 = keras.regularizers.L1

# --- seed 002: Fashion-MNIST; Adam (lr 0.001), batch 32, 30 epochs unless said ---------------
SEED_002 = """
train: {optimizer: adam, learning_rate: 0.001, batch_size: 32, epochs: 30, dropout: 0}
doe:
  cells:
    model-0: {family: dense, nodes: [128]}
    model-1: {family: dense, nodes: [256, 512]}
    model-2: {family: dense, nodes: [512, 256]}
    model-3: {family: dense, nodes: [512, 256], dropout: 0.5}
    model-4: {family: dense, nodes: [1024, 512, 256]}
    model-5: {family: dense, nodes: [512, 256], activity_l1: 0.0001}
    model-6: {family: dense, nodes: [512, 256], dropout: 0.5, activity_l1: 0.0001}
    model-7: {family: dense, nodes: [1024, 512, 256], dropout: 0.5, activity_l1: 0.0001}
    model-a: {family: cnn, layers: 1, nodes: 32, padding: valid, pool_padding: valid, head: 128, batch_size: 64, epochs: 20}
    model-b: {family: cnn, layers: 3, nodes: 32, filter_growth: 2, pool_padding: valid,
              block_dropout: [0.25, 0.25, 0.4], dropout: 0.5}
    model-c: {family: cnn, nodes: [32, 64, 128, 256], pool_padding: valid,
              block_dropout: [0.2, 0.3, 0.4, 0.4], dropout: 0.5}
    model-d: {family: cnn, nodes: [32, 64, 128], pool_padding: valid, block_dropout: [0.25, 0.25, 0.4],
              dropout: 0.5, batch_norm: true, batch_norm_position: after}
"""


def seed_002(name: str) -> keras.Model:
    flat = (keras.Input(shape=(28, 28)), L.Flatten(), L.Rescaling(1 / 255))
    image = (keras.Input(shape=(28, 28, 1)), L.Rescaling(1 / 255))
    out = L.Dense(10, activation="softmax")
    act = {"activity_regularizer": L1(1e-4)}
    nets = {
        "model-0": [relu(128)],
        "model-1": [relu(256), relu(512)],
        "model-2": [relu(512), relu(256)],
        "model-3": [relu(512), L.Dropout(0.5), relu(256), L.Dropout(0.5)],
        "model-4": [relu(1024), relu(512), relu(256)],
        # the notebook's text lost models 5 and 6's code; their summaries are model 2's and 3's
        # layers, and model 7's code shows the L1 they add: an activity penalty of 1e-4
        "model-5": [relu(512, **act), relu(256, **act)],
        "model-6": [relu(512, **act), L.Dropout(0.5), relu(256, **act), L.Dropout(0.5)],
        "model-7": [relu(1024, **act), L.Dropout(0.5), relu(512, **act), L.Dropout(0.5),
                    relu(256, **act), L.Dropout(0.5)],
    }
    if name in nets:
        return keras.Sequential([*flat, *nets[name], out])
    blocks = {
        # model A's first lines are lost in the text; its summary: a 3x3 valid convolution
        # of 32 filters (26x26, 320 parameters), a 2x2 pooling (13x13), Dense 128
        "model-a": [conv(32, padding="valid"), L.MaxPooling2D((2, 2)), L.Flatten(), relu(128)],
        "model-b": [conv(32), L.MaxPooling2D((2, 2)), L.Dropout(0.25), conv(64), L.MaxPooling2D((2, 2)),
                    L.Dropout(0.25), conv(128), L.MaxPooling2D((2, 2)), L.Dropout(0.4),
                    L.Flatten(), relu(128), L.Dropout(0.5)],
        "model-c": [conv(32), L.MaxPooling2D((2, 2)), L.Dropout(0.2), conv(64), L.MaxPooling2D((2, 2)),
                    L.Dropout(0.3), conv(128), L.MaxPooling2D((2, 2)), L.Dropout(0.4),
                    conv(256), L.MaxPooling2D((2, 2)), L.Dropout(0.4), L.Flatten(), relu(128), L.Dropout(0.5)],
        "model-d": [conv(32), L.BatchNormalization(), L.MaxPooling2D((2, 2)), L.Dropout(0.25),
                    conv(64), L.BatchNormalization(), L.MaxPooling2D((2, 2)), L.Dropout(0.25),
                    conv(128), L.BatchNormalization(), L.MaxPooling2D((2, 2)), L.Dropout(0.4),
                    L.Flatten(), relu(128), L.BatchNormalization(), L.Dropout(0.5)],
    }
    return keras.Sequential([*image, *blocks[name], out])


# the notebook's printed "Total params"
PRINTED_002 = {
    "model-0": 101_770, "model-1": 337_674, "model-2": 535_818, "model-3": 535_818, "model-4": 1_462_538,
    "model-5": 535_818, "model-6": 535_818, "model-7": 1_462_538, "model-a": 693_962, "model-b": 241_546,
    "model-c": 422_026, "model-d": 242_954,
}

# --- seed 003: Sign-Language-MNIST, 24 classes; SGD lr 0.01 (momentum 0.9 for its CNNs), batch 32
SEED_003 = """
train: {optimizer: sgd, learning_rate: 0.01, momentum: 0.9, batch_size: 32, epochs: 5, dropout: 0}
doe:
  cells:
    baseline-cnn: {family: cnn, layers: 1, nodes: 32, padding: valid, pool_padding: valid, head: 100}
    bn-dense: {family: dense, nodes: [1024, 512], input_batch_norm: true, batch_norm: [false, true],
               batch_norm_position: after, momentum: 0.0, epochs: 20}
    cnn: {family: cnn, nodes: [64, 64, 32, 64], pooling: [none, max, max, none], pool_padding: valid,
          batch_norm: [false, true, false, false], batch_norm_position: after, flatten_batch_norm: true, head: 200}
"""


def seed_003(name: str) -> keras.Model:
    out = L.Dense(24, activation="softmax")
    if name == "baseline-cnn":
        return seq((28, 28, 1), conv(32, padding="valid"), L.MaxPooling2D(2), L.Flatten(), relu(100), out)
    if name == "bn-dense":
        return seq((28, 28, 1), L.Flatten(), L.BatchNormalization(), relu(1024), relu(512),
                   L.BatchNormalization(), out)
    # the CNN of sizes [64, 32, 64]: two convolutions of the first size, batch norm and
    # pooling; a convolution of each middle size with pooling; one of the last size, no pooling
    return seq((28, 28, 1), conv(64), conv(64), L.BatchNormalization(), L.MaxPooling2D(2),
               conv(32), L.MaxPooling2D(2), conv(64), L.Flatten(), L.BatchNormalization(), relu(200), out)


PRINTED_003 = {"baseline-cnn": 543_644, "bn-dense": 1_346_136}  # the CNN's summary was not printed

# --- seed 004: Digit Recognizer, pixels / 255 - 0.5, Adam lr 0.001 ----------------------------
SEED_004 = """
train: {optimizer: adam, learning_rate: 0.001, batch_size: 64, epochs: 30}
doe:
  cells:
    cnn-first: {family: cnn, nodes: [8, 16], kernel_size: 5, pool_padding: valid, head: 256, dropout: 0,
                input_scaling: centred}
    cnn-final: {family: cnn, nodes: [16, 32], pool_padding: valid, batch_norm: true, batch_norm_position: after, block_dropout: 0.2,
                head: 256, dropout: 0.3, input_scaling: centred, batch_size: 32, epochs: 20}
"""


def seed_004(name: str) -> keras.Model:
    out = L.Dense(10, activation="softmax")
    if name == "cnn-first":  # its defaults: filters (8, 16), kernel 5, 256 units, dropout (0, 0, 0)
        return seq((28, 28, 1), conv(8, 5), L.MaxPooling2D(), L.Dropout(0.0), conv(16, 5), L.MaxPooling2D(),
                   L.Dropout(0.0), L.Flatten(), relu(256), L.Dropout(0.0), out)
    return seq((28, 28, 1), conv(16), L.BatchNormalization(), L.MaxPooling2D(), L.Dropout(0.2),
               conv(32), L.BatchNormalization(), L.MaxPooling2D(), L.Dropout(0.2), L.Flatten(),
               relu(256), L.BatchNormalization(), L.Dropout(0.3), out)


CASES = (
    [("002", name, SEED_002, seed_002, 10, PRINTED_002[name]) for name in PRINTED_002]
    + [("003", name, SEED_003, seed_003, 24, PRINTED_003.get(name)) for name in ("baseline-cnn", "bn-dense", "cnn")]
    + [("004", name, SEED_004, seed_004, 10, None) for name in ("cnn-first", "cnn-final")]
)


@pytest.mark.parametrize(("seed", "name", "text", "rebuild", "classes", "printed"), CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_a_seed_network_declared_in_params_yaml_is_the_seeds(seed, name, text, rebuild, classes, printed):
    cell = cells_from(text)[name]
    ours = models.build(cell.family, 784, classes, cell.net)
    theirs = rebuild(name)
    assert_same_network(ours, theirs)
    if printed is not None:
        assert ours.count_params() == printed
    scaling = ours.layers[0]
    assert isinstance(scaling, L.Rescaling) and scaling.scale == pytest.approx(1 / 255)
    assert scaling.offset == (-0.5 if seed == "004" else 0.0)


def test_the_seed_cells_carry_their_training_knobs():
    b, a = cells_from(SEED_002)["model-b"], cells_from(SEED_002)["model-a"]
    assert (b.train.optimizer, b.train.learning_rate, b.train.batch_size, b.train.epochs) == ("adam", 0.001, 32, 30)
    assert (a.train.batch_size, a.train.epochs) == (64, 20)
    assert (b.layers, b.nodes, b.net.nodes) == (3, 32, (32, 64, 128))
    cnn, dense = cells_from(SEED_003)["cnn"], cells_from(SEED_003)["bn-dense"]
    assert (cnn.train.optimizer, cnn.train.momentum) == ("sgd", 0.9)
    assert (dense.train.momentum, dense.train.epochs, dense.layers, dense.nodes) == (0.0, 20, 2, (1024, 512))
    sgd = models.optimizer(cnn.train.optimizer, cnn.train.learning_rate, **models.optimizer_options("sgd", cnn.train))
    assert (float(sgd.learning_rate), sgd.momentum) == (pytest.approx(0.01), 0.9)


@pytest.mark.parametrize("case", [c for c in CASES if c[1] in ("model-d", "cnn", "cnn-final", "model-7")],
                         ids=lambda c: f"{c[0]}-{c[1]}")
def test_the_fast_training_forward_pass_runs_the_new_layers(case):
    """forward.training_forward calls every layer it does not replace with training=True: batch
    norm in either position, per-block dropout, pooling without padding, activity penalties."""
    from mnist_doe.engine.forward import training_forward

    seed, name, text, _, classes, _ = case
    cell = cells_from(text)[name]
    model = models.build(cell.family, 784, classes, cell.net)
    x = np.random.default_rng(0).integers(0, 256, (6, 784), dtype=np.uint8)
    keras.utils.set_random_seed(1)
    forward = training_forward(model)
    proba = np.asarray(forward(x) if forward is not None else model(x, training=True))
    assert proba.shape == (6, classes) and np.allclose(proba.sum(1), 1, atol=1e-5)
    if not any(isinstance(layer, L.Dropout) for layer in model.layers):
        np.testing.assert_allclose(proba, np.asarray(model(x, training=True)), rtol=1e-5, atol=1e-6)
