"""The train stage's forward pass: each layer's dropout mask from its own draw, each layer one
multiplication; reproducible, dropping what Keras' layers drop, learning what they learn."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_doe.engine.loop import Trainer, epoch_order

from test_train import digits

pytestmark = pytest.mark.slow


def build(family: str, dropout: float, seed: int = 11, nodes: int = 8):
    import keras

    from mnist_doe.engine.models import BUILDERS, Regularisation

    keras.utils.set_random_seed(seed)
    model = BUILDERS[family](784, 10, 2, nodes, Regularisation(dropout=dropout, l2=1e-4))
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss="sparse_categorical_crossentropy")
    return model


def train(model, x, y, epochs: int, fast: bool = True):
    """Losses of `epochs` epochs of the Trainer, through `training_forward` or Keras' layers."""
    import tensorflow as tf

    from mnist_doe.engine.forward import training_forward

    tf.config.experimental.enable_op_determinism()
    t = Trainer(model, 32, tf.distribute.get_strategy(), forward=training_forward(model) if fast else None)
    epoch = t._train_epoch(x, y)
    no_maps = tf.zeros((0, 8), tf.float32)  # no fresh augmentation
    return [float(epoch(tf.constant(epoch_order(len(x), 2, e)), no_maps)[0]) for e in range(epochs)]


def test_what_is_replaced():
    import keras

    from mnist_doe.engine.forward import training_forward

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


def test_masks_drop_each_layers_rate_independently():
    """Two layers of other rates and shapes: 0 or 1 / (1 - rate), about `rate` of the units
    dropped, rows and layers not alike, new masks every call, the same ones from the same
    seed generator state."""
    import keras
    import tensorflow as tf

    from mnist_doe.engine.forward import dropout_masks

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((10, 10, 30)), keras.layers.Dropout(0.1),
                              keras.layers.Flatten(), keras.layers.Dropout(0.5)])
    first, second = model.layers[0], model.layers[2]
    make = dropout_masks([first, second])
    start = first.seed_generator.state.numpy()
    a, b = (m.numpy() for m in make(64, tf.float32))
    assert a.shape == (64, 10, 10, 30) and b.shape == (64, 3000)
    assert set(np.unique(a)) == {0.0, np.float32(1 / 0.9)}
    assert set(np.unique(b)) == {0.0, np.float32(2.0)}
    # 192,000 units each: one standard error of the fraction is about 0.001
    assert abs((a == 0).mean() - 0.1) < 0.005
    assert abs((b == 0).mean() - 0.5) < 0.005
    dropped_a, dropped_b = (a == 0).reshape(64, -1).astype(float), (b == 0).astype(float)
    assert abs(np.corrcoef(dropped_a.ravel(), dropped_b.ravel())[0, 1]) < 0.02
    assert abs(np.corrcoef(dropped_b[:32].ravel(), dropped_b[32:].ravel())[0, 1]) < 0.02
    again = make(64, tf.float32)[1].numpy()
    assert not np.array_equal(b, again)
    first.seed_generator.state.assign(start)
    np.testing.assert_array_equal(make(64, tf.float32)[1].numpy(), b)
    assert make(5, tf.bfloat16)[0].dtype == tf.bfloat16


def test_masks_of_odd_and_equal_widths():
    """A layer of an odd number of units gets a mask of its own shape; two layers of the same
    width get masks of their own, not one mask twice."""
    import keras
    import tensorflow as tf

    from mnist_doe.engine.forward import dropout_masks

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((7,)), keras.layers.Dropout(0.3), keras.layers.Dense(7),
                              keras.layers.Dropout(0.3)])
    odd, same = (m.numpy() for m in dropout_masks([model.layers[0], model.layers[2]])(4000, tf.float32))
    assert odd.shape == same.shape == (4000, 7)
    assert set(np.unique(odd)) == {0.0, np.float32(1 / 0.7)}
    assert abs((odd == 0).mean() - 0.3) < 0.015  # 28,000 units: one standard error about 0.003
    assert abs(np.corrcoef((odd == 0).ravel(), (same == 0).ravel())[0, 1]) < 0.03


def test_the_forward_pass_applies_the_masks():
    """The model's own output through a stack of dropouts on ones is the product of their
    masks: 1 / (1 - rate) to the power of how many kept a unit, or 0."""
    import keras
    import tensorflow as tf

    from mnist_doe.engine.forward import training_forward

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4000,)), keras.layers.Dropout(0.25), keras.layers.Dropout(0.2)])
    out = training_forward(model)(tf.ones((4, 4000))).numpy()
    assert set(np.unique(out)) == {0.0, np.float32(np.float32(1 / 0.75) * np.float32(1.25))}
    assert abs((out == 0).mean() - (1 - 0.75 * 0.8)) < 0.02
    again = training_forward(model)(tf.ones((4, 4000))).numpy()
    assert not np.array_equal(out, again)  # the seed generator moves on, as Keras' does
    # a batch of a size known only when it runs (a replica's share under a strategy)
    unknown = tf.function(training_forward(model), input_signature=[tf.TensorSpec([None, 4000])])
    out = unknown(tf.ones((3, 4000))).numpy()
    assert out.shape == (3, 4000) and 0.3 < (out == 0).mean() < 0.5


@pytest.mark.parametrize("family", ["dense", "cnn"])
def test_training_is_reproducible_and_learns_what_keras_layers_learn(family):
    """Same seed, same weights bit for bit; another seed, other weights; and the training loss
    (dropout on) of the last two of six epochs within 20% of training through Keras' own
    dropout layers, where the same model without dropout ends far lower."""
    x, y = digits()
    x, y = x[:320], y[:320]
    runs = []
    for seed in (11, 11, 12):
        model = build(family, 0.3, seed, nodes=32)
        runs.append((train(model, x, y, 6), [v.numpy() for v in model.trainable_variables]))
    (losses, weights), (losses_again, weights_again), (_, other_seed) = runs
    assert losses == losses_again
    for a, b in zip(weights, weights_again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(weights[0], other_seed[0])
    assert losses[-1] < 0.8 * losses[0]

    def last(losses):  # the mean of the last two epochs: one epoch alone moves with the masks
        return (losses[-1] + losses[-2]) / 2

    keras_losses = train(build(family, 0.3, nodes=32), x, y, 6, fast=False)
    assert abs(last(losses) - last(keras_losses)) < 0.2 * last(keras_losses)
    # the window is narrow enough to tell dropout from none
    assert last(train(build(family, 0.0, nodes=32), x, y, 6, fast=False)) < 0.7 * last(keras_losses)
