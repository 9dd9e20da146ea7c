"""Stacked LSTMs for training on a CPU: Keras' LSTM maths with a backward pass written out.

Differentiating Keras' unrolled LSTM gives, for every row of every layer, two products for the
weight gradients and a dozen small element-wise ops, each of them paying the executor's
per-op cost at batch 32. Here the backward pass of a whole stack of LSTMs is written out:

- the weight gradients of a layer are one product each over all rows (`[T*B, n]^T x
  [T*B, 4n]`) in place of 28 small ones and their sums;
- the gate derivatives that need only forward values are formed while the chain of
  recurrent products waits, leaving a few ops per row on the critical path;
- the layers stay linked row by row, so on two op streams the lower layer's backward pass
  runs behind the upper one's, as the forward passes do.

The weights are the Keras layers' own variables and the maths is Keras' (gates i, f, c, o;
sigmoid and tanh; zero initial state), so the optimizer, saving and prediction are Keras'
as before; gradients agree with automatic differentiation of `keras.layers.LSTM` to float32
rounding (tests/test_recurrent.py). Used by the train stage on a CPU through
`forward.training_forward`; a GPU keeps Keras' cuDNN kernel.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def supported(layer) -> bool:
    """Whether `layer` is an LSTM whose maths `lstm_stack` computes."""
    if not isinstance(layer, keras.layers.LSTM):
        return False
    cell = layer.cell
    return (
        cell.activation is keras.activations.tanh
        and cell.recurrent_activation is keras.activations.sigmoid
        and cell.use_bias
        and not cell.dropout
        and not cell.recurrent_dropout
        and not layer.go_backwards
        and not layer.stateful
        and not layer.return_state
        and layer.compute_dtype == "float32"
    )


def lstm_stack(x: tf.Tensor, weights: list[tuple], sequences: bool, input_gradient: bool = True) -> tf.Tensor:
    """The output of LSTM layers applied one after another to `x` ([batch, rows, features]).

    `weights`: per layer (kernel, recurrent kernel, bias) as tensors. `sequences`: whether the
    last layer returns every row ([batch, rows, units]) or only the last ([batch, units]);
    the layers below it return every row. `input_gradient=False` leaves `x` without a
    gradient (it is data)."""
    n_layers = len(weights)
    rows, features = x.shape[1], x.shape[2]

    @tf.custom_gradient
    def run(x, *flat):
        ws = [flat[3 * k: 3 * k + 3] for k in range(n_layers)]
        x_rows = tf.reshape(tf.transpose(x, [1, 0, 2]), [-1, features])  # row-major [rows*batch, features]
        kernel, _, bias = ws[0]
        # the first layer's input products of all rows at once: its input is all there
        first = tf.unstack(tf.reshape(tf.nn.bias_add(tf.matmul(x_rows, kernel), bias), [rows, -1, kernel.shape[1]]))
        saved = []  # per layer, per row: (i, f, g, o, c_prev, tanh(c))
        outputs = []  # per layer, per row: h
        for k, (kernel, recurrent, bias) in enumerate(ws):
            h = c = None
            states, hs = [], []
            for t in range(rows):
                z = first[t] if k == 0 else tf.nn.bias_add(tf.matmul(outputs[k - 1][t], kernel), bias)
                if h is not None:  # the initial state is zero
                    z = z + tf.matmul(h, recurrent)
                zi, zf, zc, zo = tf.split(z, 4, axis=1)
                i, f, g, o = tf.sigmoid(zi), tf.sigmoid(zf), tf.tanh(zc), tf.sigmoid(zo)
                c_prev = c
                c = i * g if c is None else f * c + i * g
                tc = tf.tanh(c)
                h = o * tc
                states.append((i, f, g, o, c_prev, tc))
                hs.append(h)
            saved.append(states)
            outputs.append(hs)
        out = tf.stack(outputs[-1], axis=1) if sequences else outputs[-1][-1]

        def grad(d_out):
            grads = [None] * (3 * n_layers)
            d_above = tf.unstack(d_out, axis=1) if sequences else [None] * (rows - 1) + [d_out]
            for k in reversed(range(n_layers)):
                kernel, recurrent, _ = ws[k]
                want_below = k > 0 or input_gradient
                dh_next = dc = f_next = None
                dzs, d_below = [None] * rows, [None] * rows
                for t in reversed(range(rows)):
                    i, f, g, o, c_prev, tc = saved[k][t]
                    # from forward values only, so computed off the chain of recurrent products:
                    # dz = [dc, dc, dc, dh] * gates, with the gate derivatives folded in
                    # no forget-gate gradient in row 0, whose previous cell state is zero
                    forget = tf.zeros_like(f) if c_prev is None else c_prev * (f - f * f)
                    gates = tf.concat([g * (i - i * i), forget, i * (1 - g * g), tc * (o - o * o)], axis=1)
                    dh = d_above[t]
                    if dh_next is not None:
                        dh = dh_next if dh is None else dh + dh_next
                    dc_here = dh * (o * (1 - tc * tc))
                    dc = dc_here if dc is None else dc * f_next + dc_here
                    f_next = f
                    dz = tf.concat([dc, dc, dc, dh], axis=1) * gates
                    dzs[t] = dz
                    if t > 0:
                        dh_next = tf.matmul(dz, recurrent, transpose_b=True)
                    if want_below:
                        d_below[t] = tf.matmul(dz, kernel, transpose_b=True)
                dz_rows = tf.concat(dzs, axis=0)  # [rows*batch, 4 units]
                below = x_rows if k == 0 else tf.concat(outputs[k - 1], axis=0)
                grads[3 * k] = tf.matmul(below, dz_rows, transpose_a=True)
                # row 0 starts from a zero state: the recurrent gradient sums rows 1..
                grads[3 * k + 1] = (
                    tf.matmul(tf.concat(outputs[k][:-1], axis=0), tf.concat(dzs[1:], axis=0), transpose_a=True)
                    if rows > 1 else tf.zeros_like(recurrent)
                )
                grads[3 * k + 2] = tf.reduce_sum(dz_rows, axis=0)
                d_above = d_below
            d_x = tf.stack(d_above, axis=1) if input_gradient else None
            return (d_x, *grads)

        return out, grad

    return run(x, *[w for triple in weights for w in triple])
