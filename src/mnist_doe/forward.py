"""The training-mode forward pass of a `Sequential` model, in fewer ops on the critical path.

`Trainer` calls `model(x, training=True)` once per batch part. For the models the builders
make, two layers cost more there than their arithmetic:

- `Dropout`: Keras draws its mask and applies it as `where(mask, x * scale, 0)`, whose
  gradient is another select and a multiplication, all on the chain from one layer to the
  next. Here the layer's own mask (same seed generator, same draw, so the same numbers) is
  formed as a tensor of 0 and `scale` off that chain, and the layer becomes one
  multiplication; forward and gradient are bit for bit Keras'.
- runs of `LSTM` layers: their backward pass is written out (`recurrent.lstm_stack`).

Every other layer is called as it is. The variables are the model's own, so the optimizer,
backups and the saved model are unchanged.
"""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

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


def _as_mask(layer) -> bool:
    return isinstance(layer, keras.layers.Dropout) and 0 < layer.rate < 1 and layer.noise_shape is None


def training_forward(model: keras.Model, lstms: bool = True) -> Callable | None:
    """A function computing `model(x, training=True)` as described above; None when `model`
    is not `Sequential` or has nothing to replace. `lstms=False` leaves LSTMs to Keras (a GPU
    has its cuDNN kernel)."""
    if not isinstance(model, keras.Sequential):
        return None
    layers = list(model.layers)
    runs = _lstm_runs(layers) if lstms else {}
    if not runs and not any(_as_mask(layer) for layer in layers):
        return None

    def forward(x):
        h, i = x, 0
        while i < len(layers):
            layer = layers[i]
            if i in runs:
                stack = layers[i: runs[i]]
                weights = [(s.cell.kernel.value, s.cell.recurrent_kernel.value, s.cell.bias.value) for s in stack]
                # below it, data: no gradient needed unless a layer with weights came first
                below_trainable = any(earlier.trainable_weights for earlier in layers[:i])
                h = lstm_stack(h, weights, stack[-1].return_sequences, input_gradient=below_trainable)
                i = runs[i]
                continue
            if _as_mask(layer):
                # Keras' own draw on a tensor of ones: 0 where dropped, 1 / (1 - rate) where kept
                mask = keras.random.dropout(tf.ones(tf.shape(h), h.dtype), layer.rate, seed=layer.seed_generator)
                h = h * mask
            else:
                h = layer(h, training=True)
            i += 1
        return h

    return forward
