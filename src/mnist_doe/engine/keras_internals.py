"""Every use of Keras internals by the training engine, in one place.

The fast loop (`loop`, `forward`, `recurrent`) reads a few attributes that Keras does not
document. Each is read here, through one function with a one-line reason, and each was
checked with the Keras releases in `CHECKED_WITH` (tests/test_keras_internals.py checks them
against the installed release and names the attribute that moved). When a release moves one,
the function raises `KerasChanged` naming it, rather than training differently in silence.
"""

from __future__ import annotations

import keras
import tensorflow as tf

CHECKED_WITH = ("3.11.3", "3.13.2", "3.15.1")


class KerasChanged(RuntimeError):
    """An internal attribute the engine relies on is not where the checked Keras releases kept it."""


def _attribute(obj, name: str, why: str):
    try:
        return getattr(obj, name)
    except AttributeError:
        raise KerasChanged(
            f"Keras {keras.__version__} has no {type(obj).__name__}.{name} ({why}); "
            f"checked with Keras {', '.join(CHECKED_WITH)}: install one of those"
        ) from None


def softmax_logits(proba: tf.Tensor) -> tf.Tensor | None:
    """The logits Keras' softmax kept on its output (`_keras_logits`), or None for an output
    no softmax made.

    Reason: the loss from logits runs as one kernel, where Keras' own call under op
    determinism becomes a dozen small ops (Keras itself reads `_keras_logits` in its loss)."""
    return getattr(proba, "_keras_logits", None)


def adam_slots(optimizer: keras.optimizers.Adam, variable) -> tuple:
    """Adam's first and second moment variables of `variable`.

    Reason: the fused `ResourceApplyAdam` kernel updates them in place; Keras keeps them in
    `_momentums` / `_velocities`, indexed by `_get_variable_index`."""
    why = "Adam's moments, updated by the fused Adam kernel"
    index = _attribute(optimizer, "_get_variable_index", why)(variable)
    return _attribute(optimizer, "_momentums", why)[index], _attribute(optimizer, "_velocities", why)[index]


def replace_update_step(optimizer: keras.optimizers.Optimizer, update_step) -> None:
    """Make `update_step(gradient, variable, learning_rate)` the optimizer's per-variable update.

    Reason: Keras' base optimizer calls `update_step` once per variable after clipping, weight
    decay and summing over replicas; only the arithmetic is swapped for one fused kernel."""
    _attribute(optimizer, "update_step", "the per-variable update the fused kernels replace")
    optimizer.update_step = update_step


def resource_handle(variable) -> tf.Tensor:
    """The TensorFlow resource handle of a Keras variable, for TensorFlow's raw update ops.

    Reason: raw `ResourceApply*` ops take a handle, which Keras' TensorFlow backend hands out
    as `.handle` (its `tf.Variable`'s)."""
    return _attribute(variable, "handle", "the resource handle TensorFlow's raw update ops take")


def dropout_seed(layer: keras.layers.Dropout) -> tf.Tensor:
    """Draw the next stateless int32 seed from a Dropout layer's seed generator, as Keras'
    TensorFlow backend does (`seed_generator.next()`, then floormod to int32).

    Reason: the dropout masks drawn off the chain come from the layer's own generator, so a
    model's random state (saved and restored in a backup) is the one Keras keeps."""
    generator = _attribute(layer, "seed_generator", "the random state of a dropout layer")
    state = _attribute(generator, "next", "how a seed generator hands out seeds")()
    return tf.cast(tf.math.floormod(state, tf.int32.max - 1), tf.int32)


def lstm_weights(layer: keras.layers.LSTM) -> tuple:
    """(kernel, recurrent kernel, bias) of an LSTM layer, as tensors.

    Reason: the written-out LSTM backward pass computes with the layer's own variables, which
    Keras keeps on its cell (`cell.kernel`, `cell.recurrent_kernel`, `cell.bias`)."""
    why = "an LSTM's weights, used by the written-out backward pass"
    cell = _attribute(layer, "cell", why)
    return tuple(_attribute(cell, name, why).value for name in ("kernel", "recurrent_kernel", "bias"))
