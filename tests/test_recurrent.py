"""The written-out LSTM backward pass against Keras' LSTM differentiated automatically."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_doe.engine.loop import Trainer

from test_train import digits

pytestmark = pytest.mark.slow


def keras_stack(units: list[int], last_sequences: bool, seed: int = 7):
    import keras

    keras.utils.set_random_seed(seed)
    return [
        keras.layers.LSTM(n, return_sequences=k < len(units) - 1 or last_sequences)
        for k, n in enumerate(units)
    ]


@pytest.mark.parametrize(
    "units, last_sequences, input_gradient",
    [([12, 8], False, False), ([12, 8], False, True), ([6], True, True), ([5, 7, 4], True, False), ([9], False, True)],
)
def test_output_and_gradients_equal_keras(units, last_sequences, input_gradient):
    import tensorflow as tf

    from mnist_doe.engine.recurrent import lstm_stack

    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((6, 5, 3)).astype(np.float32))
    layers = keras_stack(units, last_sequences)
    h = x
    for layer in layers:
        h = layer(h)
    for layer in layers:  # trained-looking weights: non-zero biases, larger scales
        for v in layer.trainable_weights:
            v.assign(rng.normal(0, 0.6, v.shape).astype(np.float32))
    out_weight = tf.constant(rng.normal(size=h.shape).astype(np.float32))
    variables = [v for layer in layers for v in layer.trainable_weights]

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        h = x
        for layer in layers:
            h = layer(h)
        expected_loss = tf.reduce_sum(h * out_weight)
        ours = lstm_stack(
            x, [(la.cell.kernel.value, la.cell.recurrent_kernel.value, la.cell.bias.value) for la in layers],
            last_sequences, input_gradient=input_gradient,
        )
        loss = tf.reduce_sum(ours * out_weight)

    np.testing.assert_allclose(ours.numpy(), h.numpy(), rtol=1e-5, atol=1e-6)
    expected = tape.gradient(expected_loss, [x, *variables])
    got = tape.gradient(loss, [x, *variables])
    for want, have in zip(expected[1:], got[1:]):
        assert have is not None
        np.testing.assert_allclose(have.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)
    if input_gradient:
        np.testing.assert_allclose(got[0].numpy(), expected[0].numpy(), rtol=1e-4, atol=1e-5)
    else:
        assert got[0] is None


def test_an_epoch_through_the_written_out_lstm_learns_what_keras_learns():
    """Same model, same batches, Adam: the weights after one epoch agree with the trainer
    running Keras' own LSTM layers (float32 rounding apart), as do loss and accuracy. (No
    dropout: the train stage draws its masks its own way, tests/test_forward.py.)"""
    import keras
    import tensorflow as tf

    from mnist_doe.engine.models import BUILDERS, Regularisation
    from mnist_doe.engine.forward import training_forward

    tf.config.experimental.enable_op_determinism()
    x, y = digits()
    x, y = x[:320], y[:320]

    def run(fast: bool):
        keras.utils.set_random_seed(4)
        model = BUILDERS["lstm"](784, 10, 2, 16, Regularisation(l2=1e-4))
        model.compile(optimizer=keras.optimizers.Adam(0.003), loss="sparse_categorical_crossentropy")
        t = Trainer(model, 32, tf.distribute.get_strategy(), forward=training_forward(model) if fast else None)
        from mnist_doe.engine.loop import epoch_order

        loss, accuracy = t._train_epoch(x, y)(tf.constant(epoch_order(len(x), 1, 0)), tf.zeros((0, 8), tf.float32))
        return model, float(loss), float(accuracy)

    keras_model, keras_loss, keras_accuracy = run(fast=False)
    model, loss, accuracy = run(fast=True)
    assert loss == pytest.approx(keras_loss, rel=1e-4)
    assert accuracy == pytest.approx(keras_accuracy, abs=1 / 320)
    for a, b in zip(model.trainable_variables, keras_model.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-4)
    # and it did learn: the weights moved from their initial values
    keras.utils.set_random_seed(4)
    fresh = BUILDERS["lstm"](784, 10, 2, 16, Regularisation(l2=1e-4))
    moved = [np.abs(a.numpy() - b.numpy()).max() for a, b in zip(model.trainable_variables, fresh.trainable_variables)]
    assert min(moved) > 1e-3
