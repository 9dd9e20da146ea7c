"""The train stage's forward pass: dropout as a multiplication by Keras' own mask, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_doe.loop import Trainer, epoch_order

from test_train import digits

pytestmark = pytest.mark.slow


def build(family: str, dropout: float, seed: int = 11):
    import keras

    from mnist_doe.models import BUILDERS, Regularisation

    keras.utils.set_random_seed(seed)
    model = BUILDERS[family](784, 10, 2, 8, Regularisation(dropout=dropout, l2=1e-4))
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    return model


def test_what_is_replaced():
    import keras

    from mnist_doe.forward import training_forward

    assert training_forward(build("dense", 0.0)) is None  # Dropout(0) layers: nothing to do
    assert training_forward(build("dense", 0.2)) is not None
    assert training_forward(build("cnn", 0.2)) is not None
    assert training_forward(build("lstm", 0.0)) is not None
    assert training_forward(build("lstm", 0.0), lstms=False) is None
    # a recurrent dropout is not what lstm_stack computes, a noise shape not a plain mask
    odd = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4, recurrent_dropout=0.1),
                            keras.layers.Dropout(0.3, noise_shape=(None, 1)), keras.layers.Dense(2)])
    assert training_forward(odd) is None
    functional = keras.Model(*(lambda i: (i, keras.layers.Dropout(0.5)(i)))(keras.Input((4,))))
    assert training_forward(functional) is None


@pytest.mark.parametrize("family", ["dense", "cnn"])
def test_two_epochs_give_keras_weights_bit_for_bit(family):
    """Same masks from the same seed generators, the same products: identical weights."""
    import tensorflow as tf

    from mnist_doe.forward import training_forward

    tf.config.experimental.enable_op_determinism()
    x, y = digits()
    x, y = x[:256], y[:256]

    def run(fast: bool):
        model = build(family, 0.3)
        t = Trainer(model, 32, tf.distribute.get_strategy(), forward=training_forward(model) if fast else None)
        epoch = t._train_epoch(x, y)
        losses = [float(epoch(tf.constant(epoch_order(len(x), 2, e)))[0]) for e in range(2)]
        return model, losses

    keras_model, keras_losses = run(fast=False)
    model, losses = run(fast=True)
    assert losses == keras_losses
    assert losses[1] < losses[0]
    for a, b in zip(model.trainable_variables, keras_model.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_masks_drop_the_rate_and_scale_the_rest():
    """The forward pass does drop: about `rate` of a wide layer's units are zero, the others
    are scaled by 1 / (1 - rate)."""
    import keras
    import tensorflow as tf

    from mnist_doe.forward import training_forward

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2000,)), keras.layers.Dropout(0.25)])
    out = training_forward(model)(tf.ones((4, 2000))).numpy()
    assert set(np.unique(out)) == {0.0, np.float32(1 / 0.75)}
    assert abs((out == 0).mean() - 0.25) < 0.02
    again = training_forward(model)(tf.ones((4, 2000))).numpy()
    assert not np.array_equal(out, again)  # the seed generator moves on, as Keras' does
