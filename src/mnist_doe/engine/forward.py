"""The training-mode forward pass of a `Sequential` model, in fewer ops on the critical path.

`Trainer` calls `model(x, training=True)` once per batch part. For the models the builders
make, two layers cost more there than their arithmetic:

- `Dropout`: Keras draws each layer's mask with its own call of TensorFlow's Philox generator
  (about 3 ns per unit on one core, a sixth of a dense cell's step) and applies it as
  `where(mask, x * scale, 0)`, whose gradient is another select and a multiplication, all on
  the chain from one layer to the next. Here each layer's mask is drawn off that chain,
  16 random bits per unit (32 give two units): a unit is dropped when its 16 bits are below
  `rate * 2**16` (the rate to within 1/65,536), and the kept ones are scaled by
  1 / (1 - rate), as Keras does. The draws are stateless: one seed per call from the first
  dropout layer's seed generator, which moves on every call, with the layer's index folded
  in (`tf.random.fold_in`) for each layer's own stream, so the same seed gives the same
  masks, run after run, and the first layer's mask is ready without waiting for the others'.
  Each layer then is one multiplication.
- runs of `LSTM` layers: their backward pass is written out (`recurrent.lstm_stack`).

Every other layer is called as it is. The variables are the model's own, so the optimizer,
backups and the saved model are unchanged.
"""

from __future__ import annotations

import math
from typing import Callable

import keras
import tensorflow as tf

from . import keras_internals
from .recurrent import lstm_stack, supported


def _lstm_runs(layers: list) -> dict[int, int]:
    """{start: end} of every run of consecutive LSTMs that `lstm_stack` computes."""
    runs, i = {}, 0
    while i < len(layers):
        if supported(layers[i]):
            j = i + 1
            while j < len(layers) and supported(layers[j]) and layers[j - 1].return_sequences:
                j += 1
            runs[i] = j
            i = j
        else:
            i += 1
    return runs


BITS = 16  # random bits per unit: two units per 32-bit number


def _as_mask(layer) -> bool:
    """A plain dropout layer whose input has a known shape (but for the batch)."""
    if not (isinstance(layer, keras.layers.Dropout) and 0 < layer.rate < 1 and layer.noise_shape is None):
        return False
    try:
        shape = layer.output.shape[1:]
    except (AttributeError, ValueError):  # never called on a symbolic input
        return False
    return all(d is not None for d in shape)


def dropout_masks(dropouts: list) -> Callable:
    """A function of the batch size giving one mask per layer of `dropouts`, shaped as its input."""
    shapes = [tuple(layer.output.shape[1:]) for layer in dropouts]
    widths = [math.prod(shape) for shape in shapes]
    # a unit is dropped when its 16 bits, read as a number below 2**16, are below the limit
    limits = [min(round(d.rate * 2**BITS), 2**BITS - 1) for d in dropouts]
    scales = [1 / (1 - d.rate) for d in dropouts]
    first = dropouts[0]

    def masks(n, dtype) -> list:
        seed = keras_internals.dropout_seed(first)
        out = []
        for layer, (shape, width, limit, scale) in enumerate(zip(shapes, widths, limits, scales)):
            words = (width + 1) // 2  # 32 random bits per two units
            bits = tf.random.stateless_uniform([n, words], tf.random.fold_in(seed, layer),
                                               minval=None, maxval=None, dtype=tf.uint32)
            units = tf.reshape(tf.bitcast(bits, tf.uint16), [n, 2 * words])
            if width % 2:
                units = units[:, :width]
            mask = tf.where(units >= tf.constant(limit, tf.uint16), tf.constant(scale, dtype), tf.constant(0, dtype))
            out.append(tf.reshape(mask, [n, *shape]))
        return out

    return masks


def training_forward(model: keras.Model, lstms: bool = True) -> Callable | None:
    """A function computing `model(x, training=True)` as described above; None when `model`
    is not `Sequential` or has nothing to replace. `lstms=False` leaves LSTMs to Keras (a GPU
    has its cuDNN kernel)."""
    if not isinstance(model, keras.Sequential):
        return None
    layers = list(model.layers)
    runs = _lstm_runs(layers) if lstms else {}
    dropouts = [layer for layer in layers if _as_mask(layer)]
    if not runs and not dropouts:
        return None
    make_masks = dropout_masks(dropouts) if dropouts else None
    compute_dtype = dropouts[0].compute_dtype if dropouts else None

    def forward(x):
        h, i = x, 0
        n = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]
        masks = iter(make_masks(n, compute_dtype)) if make_masks else iter(())
        while i < len(layers):
            layer = layers[i]
            if i in runs:
                stack = layers[i: runs[i]]
                weights = [keras_internals.lstm_weights(s) for s in stack]
                # below it, data: no gradient needed unless a layer with weights came first
                below_trainable = any(earlier.trainable_weights for earlier in layers[:i])
                h = lstm_stack(h, weights, stack[-1].return_sequences, input_gradient=below_trainable)
                i = runs[i]
                continue
            if any(layer is d for d in dropouts):
                h = h * tf.cast(next(masks), h.dtype)  # 0 where dropped, 1 / (1 - rate) where kept
            else:
                h = layer(h, training=True)
            i += 1
        return h

    return forward
