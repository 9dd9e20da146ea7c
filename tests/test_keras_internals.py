"""The Keras internals the engine relies on are where mnist_doe.engine.keras_internals reads them.

A failure here names the attribute a Keras release moved; mnist_doe/engine/keras_internals.py
lists the releases each was checked with.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mnist_doe.engine import keras_internals
from mnist_doe.engine.keras_internals import KerasChanged


def dense_softmax():
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])


def test_a_softmax_output_keeps_its_logits():
    model = dense_softmax()
    x = tf.constant(np.random.default_rng(0).normal(size=(4, 6)), tf.float32)

    @tf.function
    def logits_and_proba(xb):
        proba = model(xb, training=True)
        logits = keras_internals.softmax_logits(proba)
        assert logits is not None, (
            f"Keras {keras.__version__} no longer keeps `_keras_logits` on a softmax output "
            f"(checked with {keras_internals.CHECKED_WITH})"
        )
        return logits, proba

    logits, proba = logits_and_proba(x)
    np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), proba.numpy(), rtol=1e-6, atol=1e-7)
    assert keras_internals.softmax_logits(tf.constant([1.0])) is None


def test_adam_slots_are_the_variables_adam_updates():
    model = dense_softmax()
    adam = keras.optimizers.Adam(0.1)
    adam.build(model.trainable_variables)
    for variable in model.trainable_variables:
        m, v = keras_internals.adam_slots(adam, variable)
        assert tuple(m.shape) == tuple(v.shape) == tuple(variable.shape)
    grads = [tf.ones_like(v) for v in model.trainable_variables]
    adam.apply_gradients(zip(grads, model.trainable_variables))
    m, v = keras_internals.adam_slots(adam, model.trainable_variables[0])
    # after one step of gradient 1: m = (1 - beta_1), v = (1 - beta_2)
    np.testing.assert_allclose(m.numpy(), 1 - adam.beta_1, rtol=1e-6)
    np.testing.assert_allclose(v.numpy(), 1 - adam.beta_2, rtol=1e-5)


def test_a_replaced_update_step_is_what_apply_gradients_calls():
    model = dense_softmax()
    sgd = keras.optimizers.SGD(0.5)
    seen = []

    def update_step(gradient, variable, learning_rate):
        seen.append(tuple(variable.shape))
        tf.raw_ops.ResourceApplyGradientDescent(
            var=keras_internals.resource_handle(variable), alpha=tf.cast(learning_rate, variable.dtype),
            delta=tf.cast(gradient, variable.dtype),
        )

    keras_internals.replace_update_step(sgd, update_step)
    before = [v.numpy() for v in model.trainable_variables]
    sgd.apply_gradients(zip([tf.ones_like(v) for v in model.trainable_variables], model.trainable_variables))
    assert seen == [tuple(v.shape) for v in model.trainable_variables]
    for old, variable in zip(before, model.trainable_variables):
        np.testing.assert_allclose(variable.numpy(), old - 0.5, rtol=1e-6, atol=1e-7)


def test_a_dropout_layer_hands_out_seeds_from_its_own_generator():
    first, twin = keras.layers.Dropout(0.5, seed=7), keras.layers.Dropout(0.5, seed=7)
    seeds = [keras_internals.dropout_seed(first).numpy() for _ in range(3)]
    assert all(s.dtype == np.int32 and s.shape == (2,) for s in seeds)
    assert len({tuple(s) for s in seeds}) == 3, "every draw a new seed"
    assert [tuple(keras_internals.dropout_seed(twin).numpy()) for _ in range(3)] == [tuple(s) for s in seeds]


def test_lstm_weights_are_the_cells_variables():
    layer = keras.layers.LSTM(5)
    layer.build((None, 4, 3))
    kernel, recurrent, bias = keras_internals.lstm_weights(layer)
    assert (tuple(kernel.shape), tuple(recurrent.shape), tuple(bias.shape)) == ((3, 20), (5, 20), (20,))


def test_a_moved_attribute_is_named():
    with pytest.raises(KerasChanged, match=r"object\._get_variable_index .*checked with Keras"):
        keras_internals.adam_slots(object(), None)
    with pytest.raises(KerasChanged, match=r"seed_generator"):
        keras_internals.dropout_seed(object())
