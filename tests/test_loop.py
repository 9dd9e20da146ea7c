"""The epoch-per-call Keras trainer: same learning as model.fit, exact resume, early stopping,
several replicas, and mixed precision left alone on a CPU."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mnist_doe.loop import Stopping, Trainer, epoch_order

from project import ROOT, env
from test_train import cell, digits, stage_dir  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow


def dense_model(optimizer: str = "adam", dropout: float = 0.0, seed: int = 3, l2: float = 0.0):
    import keras

    from mnist_doe.models import Regularisation, build_dense
    from mnist_doe.models import optimizer as make_optimizer

    keras.utils.set_random_seed(seed)
    model = build_dense(784, 10, 2, 16, Regularisation(dropout=dropout, l2=l2))
    model.compile(optimizer=make_optimizer(optimizer, 0.01), loss="sparse_categorical_crossentropy")
    return model


def trainer(model) -> Trainer:
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    return Trainer(model, 64, tf.distribute.get_strategy())


def fit(t: Trainer, x, y, epochs: int, backup, patience: int = 0, rate=lambda epoch: 0.01, log=None) -> int:
    return t.fit(
        (x[:300], y[:300]), (x[300:], y[300:]), epochs=epochs, seed=5, learning_rate=rate,
        patience=patience, backup=backup, fingerprint="f", log=log or (lambda metrics: None),
    )


def test_epoch_order_is_a_permutation_fixed_by_seed_and_epoch():
    a = epoch_order(1000, 1, 0)
    assert sorted(a) == list(range(1000))
    assert np.array_equal(a, epoch_order(1000, 1, 0))
    assert not np.array_equal(a, epoch_order(1000, 1, 1))
    assert not np.array_equal(a, epoch_order(1000, 2, 0))


def test_one_epoch_matches_keras_fit_on_the_same_batches(tmp_path):
    """Same batches, same optimizer: the weights after one epoch equal model.fit's."""
    x, y = digits()
    x, y = x[:300], y[:300]  # 4 whole batches of 64 and one of 44
    ours = dense_model("sgd", l2=1e-3)
    logged = []
    t = trainer(ours)
    t.fit((x, y), (x, y), epochs=1, seed=5, learning_rate=lambda e: 0.01, patience=0,
          backup=tmp_path / "state.npz",
          fingerprint="f", log=logged.append)

    keras_model = dense_model("sgd", l2=1e-3)
    order = epoch_order(len(x), 5, 0)
    history = keras_model.fit(x[order], y[order], batch_size=64, epochs=1, shuffle=False, verbose=0)

    for a, b in zip(ours.trainable_variables, keras_model.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
    assert int(ours.optimizer.iterations.numpy()) == int(keras_model.optimizer.iterations.numpy()) == 5
    assert logged[0]["loss"] == pytest.approx(history.history["loss"][0], rel=1e-4)


def test_a_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(tmp_path):
    """The backup holds weights, optimizer slots and dropout RNG states: resuming is exact."""
    x, y = digits()
    whole = dense_model(dropout=0.3)
    assert fit(trainer(whole), x, y, 4, tmp_path / "a" / "state.npz") == 4

    first = dense_model(dropout=0.3)
    assert fit(trainer(first), x, y, 2, tmp_path / "b" / "state.npz") == 2
    # a fresh process would build a fresh model: so does this, with another seed
    resumed = dense_model(dropout=0.3, seed=99)
    assert fit(trainer(resumed), x, y, 4, tmp_path / "b" / "state.npz") == 4
    for a, b in zip(whole.variables, resumed.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_backup_of_other_parameters_is_ignored(tmp_path, capsys):
    x, y = digits()
    backup = tmp_path / "state.npz"
    fit(trainer(dense_model()), x, y, 2, backup)
    t = trainer(dense_model())
    assert t.load_backup(backup, "other", Stopping(0)) == 0
    assert "written for other parameters" in capsys.readouterr().out


def test_stopping_waits_patience_epochs_and_keeps_the_best():
    s = Stopping(patience=2)
    losses = [1.0, 0.8, 0.9, 0.7, 0.75, 0.72]
    stops = [s.update(epoch, loss, lambda epoch=epoch: [np.array(epoch)]) for epoch, loss in enumerate(losses)]
    assert stops == [False, False, False, False, False, True]
    assert s.best == 0.7 and s.best_epoch == 3 and s.best_weights == [np.array(3)]
    assert not Stopping(patience=0).update(0, float("nan"), list)


def test_early_stopping_restores_the_best_epoch_and_survives_a_resume(tmp_path):
    """A learning rate that blows up after epoch 2 makes val_loss worse: training stops after
    `patience` bad epochs with the best epoch's weights, and a rerun does not train on."""
    x, y = digits()
    logged = []
    rate = lambda epoch: 0.01 if epoch < 2 else 50.0  # noqa: E731
    model = dense_model("sgd")
    t = trainer(model)
    backup = tmp_path / "state.npz"
    epochs = fit(t, x, y, 10, backup, patience=2, rate=rate, log=logged.append)
    val_losses = [m["val_loss"] for m in logged]
    assert epochs == 4 and len(logged) == 4
    best = int(np.nanargmin(val_losses))
    assert best == 1
    assert t.evaluate(x[300:], y[300:])[0] == pytest.approx(val_losses[best], rel=1e-5)

    again = trainer(dense_model("sgd", seed=8))
    logged.clear()
    assert fit(again, x, y, 10, backup, patience=2, rate=rate, log=logged.append) == 4
    assert logged == []  # stopped runs stay stopped
    assert again.evaluate(x[300:], y[300:])[0] == pytest.approx(val_losses[best], rel=1e-5)


def test_two_replicas_learn_what_one_device_learns(tmp_path):
    """MirroredStrategy over two logical CPUs splits every batch; the summed gradients give
    the one-device weights (up to the order of float additions)."""
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        sys.path.insert(0, "tests")
        from test_loop import dense_model, digits
        from mnist_doe.loop import Trainer
        from pathlib import Path
        x, y = digits()
        out = {}
        for name, strategy in [("one", tf.distribute.get_strategy()),
                               ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]:
            with strategy.scope():
                model = dense_model("sgd", l2=1e-3)
                t = Trainer(model, 64, strategy)
            logs = []
            t.fit((x[:300], y[:300]), (x[300:], y[300:]), epochs=2, seed=5, learning_rate=lambda e: 0.05,
                  patience=0, backup=Path(sys.argv[1]) / name / "state.npz", fingerprint="f", log=logs.append)
            out[name] = {"weights": [v.numpy().ravel().tolist() for v in model.trainable_variables],
                         "loss": [m["loss"] for m in logs], "replicas": strategy.num_replicas_in_sync,
                         "steps": int(model.optimizer.iterations.numpy())}
        print(json.dumps(out))
        """
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                          env=env(), cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["one"]["replicas"] == 1 and out["two"]["replicas"] == 2
    assert out["one"]["steps"] == out["two"]["steps"] == 10
    np.testing.assert_allclose(out["two"]["loss"], out["one"]["loss"], rtol=1e-4)
    for a, b in zip(out["one"]["weights"], out["two"]["weights"]):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-5)


def test_mixed_precision_is_left_alone_on_a_cpu(stage_dir):  # noqa: F811
    """`mixed_precision: true` computes in float16 on GPUs only: on a CPU the model and its
    predictions are exactly those of float32."""
    import keras

    from mnist_doe import train

    data = train.run_inputs(train.load_inputs(), 0)
    probabilities = {}
    for flag in (False, True):
        model, predict, _ = train.fit_keras(cell("dense", mixed_precision=flag), data, 10,
                                            _NoLog(), stage_dir / f"backup-{flag}")
        assert all(v.dtype == "float32" for v in model.variables if "seed" not in v.path)
        assert model.dtype_policy.name == "float32"
        probabilities[flag] = predict(data["x_val"])
    assert keras.mixed_precision.global_policy().name == "float32"
    np.testing.assert_array_equal(probabilities[False], probabilities[True])


class _NoLog:
    def log_metric(self, name, value):
        pass

    def next_step(self):
        pass
