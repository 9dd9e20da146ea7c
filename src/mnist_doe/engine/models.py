"""One small builder per Keras family. Images arrive as uint8 pixel rows; the model scales them.

Keeping uint8 until the first layer means no float copy of the data set ever exists in memory.

A cell in params.yaml declares its network with these keys (`common/params.py` checks them
when params load and resolves each to one value per layer or block: `params.Net`):

| key | families | values (default) | what it builds |
|---|---|---|---|
| `layers` | all | int | hidden layers (dense, lstm, mlp) or convolution blocks (cnn); may be left out when `nodes` is a list |
| `nodes` | all | int, or a list of one per layer / block | dense widths, cnn filters per block, lstm units, mlp widths |
| `activation` | dense, cnn, lstm | relu, elu, selu, gelu, swish, tanh, sigmoid, leaky_relu, linear (relu) | of every hidden dense and convolution layer (lstm: its head's) |
| `dropout` | dense, cnn, lstm | a rate in [0, 1), dense also a list per layer (train knob) | dense: after each layer; cnn, lstm: the head's default rate; 0 adds no layer |
| `l1`, `l2` | dense, cnn, lstm | >= 0 (train knobs, 0) | kernel penalties of every dense, convolution and LSTM layer but the softmax |
| `activity_l1`, `activity_l2` | dense, cnn, lstm | >= 0 (0) | penalties on the output of every hidden dense and convolution layer (lstm: its head's) |
| `batch_norm` | dense, cnn, lstm | true / false, dense and cnn also a list per layer / block (train knob, false) | dense: per layer; cnn: true = every block and the head, a list = per block (each of its convolutions); lstm: the head |
| `batch_norm_position` | dense, cnn, lstm | before, after (before) | between a layer and its activation, or after the activation |
| `input_batch_norm` | dense, cnn, lstm | true / false (false) | batch normalisation of the scaled pixels |
| `input_scaling` | dense, cnn, lstm | unit: x/255, centred: x/255 - 0.5 (unit) | the first layer's rescaling |
| `filter_growth` | cnn | > 0 (1) | with one `nodes`: block i has nodes * growth**i filters (32, 2, 3 blocks: 32, 64, 128) |
| `convs_per_block` | cnn | int or a list per block (1) | convolutions before the block's pooling |
| `kernel_size` | cnn | int (3) | square kernels of every convolution, stride 1 |
| `padding` | cnn | same, valid (same) | of every convolution |
| `pooling` | cnn | max, average, none, or a list per block (max) | 2x2 pooling, stride 2, ending each block |
| `pool_padding` | cnn | same, valid (same) | of every pooling (valid: 7 -> 3, same: 7 -> 4) |
| `block_dropout` | cnn | a rate or a list per block (0) | after each block's pooling |
| `top` | cnn | flatten, global_average (flatten) | from the last block's maps to a vector |
| `flatten_batch_norm` | cnn | true / false (false) | batch normalisation right after `top` |
| `head` | cnn, lstm | a width or a list ([128]; [] for none) | ReLU (`activation`) dense layers before the softmax |
| `head_dropout` | cnn, lstm | a rate or a list per head layer (the cell's `dropout`) | after each head layer |
| `head_batch_norm` | cnn, lstm | true / false or a list per head layer (the cell's `batch_norm` when one boolean, else false) | in each head layer, at `batch_norm_position` |
| `momentum`, `nesterov` | sgd (momentum also rmsprop) | [0, 1); true / false (null: the library's default) | train knobs: Keras' optimizer, or the mlp's |
| `beta_1`, `beta_2`, `epsilon` | adam, nadam (epsilon also rmsprop) | [0, 1); > 0 (null) | train knobs |
| `rho` | rmsprop | [0, 1) (null) | train knob |
| `C`, `solver` | logreg | > 0 (1.0); lbfgs, newton-cg, newton-cholesky, sag, saga (lbfgs) | scikit-learn's LogisticRegression |
| `alpha`, `power_t` | mlp | >= 0 (1e-4); >= 0 with `schedule: invscaling` (0.5) | MLPClassifier's L2 penalty and inverse-scaling exponent |

A layer whose rate is 0 is not built (a Dropout of rate 0 is the identity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import tensorflow as tf
from keras import layers

from ..common.params import Net, TrainParams, resolve_net


@dataclass(frozen=True)
class Regularisation:
    """Today's shared knobs of a cell: dropout, L1/L2 kernel penalties, batch normalisation
    (`net_of` turns them, with a depth and a width, into the `Net` the builders take)."""

    dropout: float = 0.0
    l1: float = 0.0
    l2: float = 0.0
    batch_norm: bool = False

    def penalty(self):
        return _kernel_penalty(self.l1, self.l2)


def net_of(family: str, depth: int, nodes, reg: Regularisation) -> Net:
    """The net of a cell of `depth` layers (or blocks) of `nodes` with the knobs of `reg`."""
    knobs = TrainParams(dropout=reg.dropout, l1=reg.l1, l2=reg.l2, batch_norm=reg.batch_norm)
    return resolve_net(f"a {family} of {depth} x {nodes}", family, {"layers": depth, "nodes": nodes}, knobs)


def _kernel_penalty(l1: float, l2: float):
    return keras.regularizers.L1L2(l1=l1, l2=l2) if l1 or l2 else None


def _activity_penalty(net: Net):
    if net.activity_l1 and net.activity_l2:
        return keras.regularizers.L1L2(l1=net.activity_l1, l2=net.activity_l2)
    if net.activity_l1:
        return keras.regularizers.L1(net.activity_l1)
    return keras.regularizers.L2(net.activity_l2) if net.activity_l2 else None


def _pixels(n_pixels: int, net: Net) -> list:
    """The uint8 input, scaled to [0, 1] or [-0.5, 0.5], batch-normalised when asked for."""
    offset = {"unit": 0.0, "centred": -0.5}[net.input_scaling]
    scale = layers.Rescaling(1.0 / 255, offset)
    return [keras.Input(shape=(n_pixels,), dtype="uint8"), scale, *_batch_norm(net.input_batch_norm)]


def _batch_norm(on: bool) -> list:
    return [layers.BatchNormalization()] if on else []


def _dropout(rate: float) -> list:
    return [layers.Dropout(rate)] if rate else []


def _softmax(n_classes: int):
    # float32 even under mixed precision: softmax and loss lose too much in float16
    return layers.Dense(n_classes, activation="softmax", dtype="float32")


def _unit(layer_type, width: int, batch_norm: bool, net: Net, **options) -> list:
    """A dense or convolution layer and its activation, batch-normalised before or after the
    activation when asked for."""
    penalties = dict(kernel_regularizer=_kernel_penalty(net.l1, net.l2), **options)
    if net.activity_l1 or net.activity_l2:
        penalties["activity_regularizer"] = _activity_penalty(net)
    if batch_norm and net.batch_norm_position == "before":
        return [layer_type(width, **penalties), layers.BatchNormalization(), layers.Activation(net.activation)]
    return [layer_type(width, activation=net.activation, **penalties), *_batch_norm(batch_norm)]


def _pooling(kind: str, padding: str) -> list:
    if kind == "none":
        return []
    pool = layers.MaxPooling2D if kind == "max" else layers.AveragePooling2D
    return [pool(2, padding=padding)]


def _head(n_classes: int, net: Net) -> list:
    """The dense layers of `head`, each with its dropout, then the softmax."""
    hidden = []
    for width, rate, batch_norm in zip(net.head, net.head_dropout, net.head_batch_norm):
        hidden += [*_unit(layers.Dense, width, batch_norm, net), *_dropout(rate)]
    return [*hidden, _softmax(n_classes)]


def dense(n_pixels: int, n_classes: int, net: Net) -> keras.Model:
    """A dense layer per width of `nodes`, each with its batch norm and dropout."""
    hidden = []
    for width, rate, batch_norm in zip(net.nodes, net.dropout, net.batch_norm):
        hidden += [*_unit(layers.Dense, width, batch_norm, net), *_dropout(rate)]
    return keras.Sequential([*_pixels(n_pixels, net), *hidden, _softmax(n_classes)])


def cnn(n_pixels: int, n_classes: int, net: Net) -> keras.Model:
    """A block per filter count of `nodes`: its convolutions (each with the block's batch
    norm), a 2x2 pooling and a dropout; then `top`, and the dense head."""
    side = int(round(n_pixels**0.5))
    blocks = []
    for filters, convs, batch_norm, pooling, rate in zip(
        net.nodes, net.convs_per_block, net.batch_norm, net.pooling, net.block_dropout
    ):
        for _ in range(convs):
            blocks += _unit(layers.Conv2D, filters, batch_norm, net, kernel_size=net.kernel_size, padding=net.padding)
        blocks += [*_pooling(pooling, net.pool_padding), *_dropout(rate)]
    top = layers.Flatten() if net.top == "flatten" else layers.GlobalAveragePooling2D()
    return keras.Sequential([
        *_pixels(n_pixels, net), layers.Reshape((side, side, 1)), *blocks,
        top, *_batch_norm(net.flatten_batch_norm), *_head(n_classes, net),
    ])


def lstm(n_pixels: int, n_classes: int, net: Net) -> keras.Model:
    """Stacked LSTMs, one per unit count of `nodes`, reading the image one row per time step;
    then the dense head."""
    side = int(round(n_pixels**0.5))
    # unrolled, a CPU runs it ~1.3x faster; unrolling would keep a GPU from its one cuDNN kernel
    unroll = not tf.config.list_physical_devices("GPU")
    last = len(net.nodes) - 1
    recurrent = [
        layers.LSTM(units, return_sequences=i < last, unroll=unroll, kernel_regularizer=_kernel_penalty(net.l1, net.l2))
        for i, units in enumerate(net.nodes)
    ]
    return keras.Sequential([*_pixels(n_pixels, net), layers.Reshape((side, side)), *recurrent, *_head(n_classes, net)])


FAMILIES = {"dense": dense, "cnn": cnn, "lstm": lstm}


def build(family: str, n_pixels: int, n_classes: int, net: Net) -> keras.Model:
    """The model of a Keras cell: `params.Cell.net` on images of `n_pixels` pixels."""
    return FAMILIES[family](n_pixels, n_classes, net)


def build_dense(n_pixels: int, n_classes: int, depth: int, nodes, reg: Regularisation) -> keras.Model:
    """`depth` ReLU layers of `nodes` units, each followed by dropout."""
    return dense(n_pixels, n_classes, net_of("dense", depth, nodes, reg))


def build_cnn(n_pixels: int, n_classes: int, depth: int, nodes, reg: Regularisation) -> keras.Model:
    """`depth` blocks of 3x3 same-padded convolution (`nodes` filters) and 2x2 max-pooling."""
    return cnn(n_pixels, n_classes, net_of("cnn", depth, nodes, reg))


def build_lstm(n_pixels: int, n_classes: int, depth: int, nodes, reg: Regularisation) -> keras.Model:
    """`depth` stacked LSTMs of `nodes` units reading the image one row per time step."""
    return lstm(n_pixels, n_classes, net_of("lstm", depth, nodes, reg))


# a cell of one depth and one width with the shared knobs (tests, benches): as before nets
BUILDERS = {"dense": build_dense, "cnn": build_cnn, "lstm": build_lstm}

OPTIMIZER_OPTIONS = {  # the knobs each Keras optimizer takes (params.OPTIMIZER_KNOBS)
    "sgd": ("momentum", "nesterov"),
    "adam": ("beta_1", "beta_2", "epsilon"),
    "nadam": ("beta_1", "beta_2", "epsilon"),
    "rmsprop": ("rho", "momentum", "epsilon"),
}


def optimizer_options(name: str, t: TrainParams) -> dict:
    """The optimizer knobs of `t` that optimizer `name` takes and that are set (not None)."""
    return {k: getattr(t, k) for k in OPTIMIZER_OPTIONS[name] if getattr(t, k) is not None}


def optimizer(name: str, learning_rate: float, **options) -> keras.optimizers.Optimizer:
    return {
        "sgd": keras.optimizers.SGD,
        "adam": keras.optimizers.Adam,
        "rmsprop": keras.optimizers.RMSprop,
        "nadam": keras.optimizers.Nadam,
    }[name](learning_rate=learning_rate, **options)


def summary(model: keras.Model) -> tuple[str, int]:
    """A table of `model`'s layers (name, type, output shape, parameters) and the totals, as
    Keras' `summary()` counts them; and the total."""
    rows = [("layer (type)", "output shape", "params")]
    for layer in model.layers:
        shape = "(" + ", ".join(str(d) for d in layer.output.shape) + ")"
        rows.append((f"{layer.name} ({type(layer).__name__})", shape, f"{layer.count_params():,}"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows]
    total = model.count_params()
    trainable = sum(math.prod(v.shape) for v in model.trainable_weights)
    lines += ["", f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}"]
    return "\n".join(lines) + "\n", total


def learning_rate_at(epoch: int, base: float, schedule: str, rate: float, every: int) -> float:
    """The learning rate of 0-based `epoch`: constant, stepped down, or decaying smoothly."""
    if schedule == "step":
        return base * rate ** math.floor(epoch / every)
    if schedule == "exponential":
        return base * rate ** (epoch / every)
    return base
