"""The epoch-per-call Keras trainer: same learning as model.fit, exact resume, early stopping,
fused optimizer updates, several replicas, and mixed precision on a CPU."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mnist_doe.engine.loop import Stopping, Trainer, epoch_order

from project import ROOT, env
from test_train import cell, digits, stage_dir  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow


def dense_model(optimizer: str = "adam", dropout: float = 0.0, seed: int = 3, l2: float = 0.0):
    import keras

    from mnist_doe.engine.models import Regularisation, build_dense
    from mnist_doe.engine.models import optimizer as make_optimizer

    keras.utils.set_random_seed(seed)
    model = build_dense(784, 10, 2, 16, Regularisation(dropout=dropout, l2=l2))
    model.compile(optimizer=make_optimizer(optimizer, 0.01), loss="sparse_categorical_crossentropy")
    return model


def trainer(model) -> Trainer:
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    return Trainer(model, 64, tf.distribute.get_strategy())


def fit(t: Trainer, x, y, epochs: int, backup, patience: int = 0, rate=lambda epoch, current: 0.01, log=None) -> int:
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
    t.fit((x, y), (x, y), epochs=1, seed=5, learning_rate=lambda e, lr: 0.01, patience=0,
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
    rate = lambda epoch, current: 0.01 if epoch < 2 else 50.0  # noqa: E731
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
        from mnist_doe.engine.loop import Trainer
        from pathlib import Path
        x, y = digits()
        out = {}
        for name, strategy in [("one", tf.distribute.get_strategy()),
                               ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]:
            with strategy.scope():
                model = dense_model("sgd", l2=1e-3)
                t = Trainer(model, 64, strategy)
            logs = []
            t.fit((x[:300], y[:300]), (x[300:], y[300:]), epochs=2, seed=5, learning_rate=lambda e, lr: 0.05,
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


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_fused_updates_compute_what_keras_computes(name):
    """ResourceApplyGradientDescent / ResourceApplyAdam in place of Keras' update ops: the
    same weights and optimizer slots after several steps of the same gradients."""
    import keras

    from mnist_doe.engine.loop import use_fused_updates

    models = [dense_model(name), dense_model(name)]
    assert use_fused_updates(models[1].optimizer)
    rng = np.random.default_rng(0)
    for _ in range(4):
        grads = [rng.normal(size=v.shape).astype("float32") for v in models[0].trainable_variables]
        for model in models:
            model.optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads],
                                                model.trainable_variables))
    keras_way, fused = models
    for a, b in zip(keras_way.trainable_variables + keras_way.optimizer.variables,
                    fused.trainable_variables + fused.optimizer.variables):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
    assert int(fused.optimizer.iterations.numpy()) == 4


def test_cross_entropy_is_keras_loss_in_one_op():
    """The loss from the softmax's logits with TensorFlow's one-kernel op: Keras' values and
    gradients, without the small-op stand-in op determinism puts in Keras' way."""
    import keras
    import tensorflow as tf

    from mnist_doe.engine.loop import cross_entropy

    tf.config.experimental.enable_op_determinism()
    x, y = digits()
    x, y = x[:64], y[:64].astype(np.int32)
    model = dense_model("sgd")
    keras_loss = keras.losses.SparseCategoricalCrossentropy(reduction=None)

    def losses(ours: bool):
        with tf.GradientTape() as tape:
            proba = model(x, training=False)
            loss = cross_entropy(y, proba, keras_loss) if ours else keras_loss(y, proba)
            total = tf.reduce_sum(loss)
        return loss, tape.gradient(total, model.trainable_variables)

    (ours, our_grads), (theirs, their_grads) = losses(True), losses(False)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5)
    assert float(tf.reduce_mean(ours)) > 1.0  # untrained: about ln(10), not a trivial zero
    for a, b in zip(our_grads, their_grads):
        # another summation order (an AVX2-only CPU, oneDNN off) moves elements by ~3e-7 of the
        # largest gradient, which is 4e-4 of an element near zero: the absolute tolerance is
        # sized to the gradient, 1e-5 of its largest element; a wrong loss is off by ~1 of it
        b = b.numpy()
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-3, atol=1e-5 * np.abs(b).max())

    graph = tf.function(lambda: cross_entropy(y, model(x), keras_loss)).get_concrete_function().graph
    kinds = {op.type for op in graph.get_operations()}
    assert "SparseSoftmaxCrossEntropyWithLogits" in kinds and "LogSoftmax" not in kinds

    # probabilities that carry no logits: Keras' own loss
    plain = tf.constant(np.full((3, 10), 0.1, np.float32))
    labels = np.array([0, 4, 9], np.int32)
    np.testing.assert_array_equal(cross_entropy(labels, plain, keras_loss).numpy(), keras_loss(labels, plain).numpy())


def test_fused_updates_leave_other_optimizers_to_keras():
    import keras

    from mnist_doe.engine.loop import use_fused_updates

    for optimizer in (keras.optimizers.SGD(0.1, momentum=0.9), keras.optimizers.Adam(amsgrad=True),
                      keras.optimizers.RMSprop(), keras.optimizers.Nadam()):
        assert not use_fused_updates(optimizer)
        assert "update_step" not in vars(optimizer)


def test_mixed_precision_on_a_cpu(stage_dir):  # noqa: F811
    """`mixed_precision: true` on a CPU: bfloat16 arithmetic where the CPU has bfloat16
    instructions (float32 weights and probabilities, about the same accuracy), else ignored
    (exactly the float32 model)."""
    import keras

    from mnist_doe import train
    from mnist_doe.engine.hardware import cpu_has_bfloat16

    data = train.run_inputs(train.load_inputs(), 0)
    probabilities = {}
    for flag in (False, True):
        knobs = {"epochs": 8, "learning_rate": 0.01, "mixed_precision": flag}
        model, predict, *_ = train.fit_keras(cell("dense", nodes=64, **knobs), data, 10,
                                            _NoLog(), stage_dir / f"backup-{flag}")
        assert all(v.dtype == "float32" for v in model.variables if "seed" not in v.path)
        expected = "mixed_bfloat16" if flag and cpu_has_bfloat16() else "float32"
        assert model.dtype_policy.name == expected
        probabilities[flag] = predict(data["x_val"])
        assert probabilities[flag].dtype == np.float32
    assert keras.mixed_precision.global_policy().name == "float32"
    if cpu_has_bfloat16():
        assert not np.array_equal(probabilities[False], probabilities[True])
        accuracy = {flag: (p.argmax(1) == data["y_val"]).mean() for flag, p in probabilities.items()}
        assert accuracy[False] > 0.6  # trained well above chance (0.1) ...
        assert accuracy[True] >= accuracy[False] - 0.1  # ... and bfloat16 learns about as well
        np.testing.assert_allclose(probabilities[True].sum(1), 1.0, rtol=1e-5)
    else:
        np.testing.assert_array_equal(probabilities[False], probabilities[True])


def test_a_batch_in_two_parts_learns_what_the_whole_batch_learns(tmp_path):
    """Two parts of every batch in one graph, gradients summed: the whole-batch weights (up
    to the order of float additions); a last batch of fewer rows than parts stays whole."""
    import tensorflow as tf

    x, y = digits()
    out = {}
    for splits in (1, 2):
        model = dense_model("sgd", l2=1e-3)
        t = Trainer(model, 64, tf.distribute.get_strategy(), splits=splits)
        logs = []
        t.fit((x[:257], y[:257]), (x[300:], y[300:]), epochs=2, seed=5, learning_rate=lambda e, lr: 0.05,
              patience=0, backup=tmp_path / str(splits) / "state.npz", fingerprint="f", log=logs.append)
        out[splits] = ([v.numpy() for v in model.trainable_variables], logs, int(model.optimizer.iterations.numpy()))
    assert out[1][2] == out[2][2] == 10
    for a, b in zip(out[1][0], out[2][0]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    for a, b in zip(out[1][1], out[2][1]):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["accuracy"] == a["accuracy"]


@pytest.mark.long  # an end-to-end study of minutes: make test-all, CI
def test_a_cnn_cell_runs_two_op_streams_and_is_reproducible(stage_dir):  # noqa: F811
    """In a fresh process on a CPU of two or more cores, a CNN trains with two op streams of
    half the cores each, every batch in two parts; two such processes predict identically."""
    from mnist_doe.engine.hardware import cpu_cores

    if cpu_cores() < 2:
        pytest.skip("needs two CPU cores")
    script = textwrap.dedent(
        """
        import json, sys
        sys.path.insert(0, sys.argv[1])
        from test_train import cell
        from test_loop import _NoLog
        from mnist_doe import train
        data = train.run_inputs(train.load_inputs(), 0)
        model, predict, *_ = train.fit_keras(cell("cnn"), data, 10, _NoLog(), train.BACKUP_DIR / sys.argv[2])
        print(json.dumps({"val": predict(data["x_val"]).tolist()}))
        """
    )
    runs = []
    for name in ("first", "second"):
        done = subprocess.run([sys.executable, "-c", script, str(ROOT / "tests"), name],
                              capture_output=True, text=True, env=env(), cwd=stage_dir)
        assert done.returncode == 0, done.stderr[-3000:]
        threads = max(1, cpu_cores() // 2)
        plural = "s" if threads > 1 else ""
        assert f"train: CPU, 2 op streams of {threads} thread{plural}, each batch computed in 2 parts" in done.stdout
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    np.testing.assert_array_equal(runs[0]["val"], runs[1]["val"])


@pytest.mark.long  # two epochs of a batch-norm CNN on 8,312 rows: about half a minute
def test_an_epoch_ending_in_a_partial_batch_is_the_same_run_after_run():
    """Two op streams, a CNN with batch norm and dropout, 64 whole batches and one of 120
    rows: two trainings from the same seed end on the same weights, to the bit. With the last
    batch traced into the loop's graph they did not (2-core EPYC: 3 runs, 3 different ends)."""
    from mnist_doe.engine.hardware import cpu_cores

    if cpu_cores() < 2:
        pytest.skip("needs two CPU cores")
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(2)
        tf.config.experimental.enable_op_determinism()
        import keras
        from mnist_doe.common import params
        from mnist_doe.engine.forward import training_forward
        from mnist_doe.engine.loop import Trainer, epoch_order
        from mnist_doe.engine.models import build, optimizer
        from mnist_doe.readers.tiny import embedded_digits

        x, y = embedded_digits()
        rows = np.random.default_rng(0).integers(0, len(y), 64 * 128 + 120)
        x, y = x[rows], y[rows]
        cell = params.cell("vgg", {"family": "cnn", "nodes": [32, 64], "convs_per_block": 2, "batch_norm": True,
                                   "block_dropout": [0.25, 0.3], "head": [256], "dropout": 0.5})
        ends = []
        for _ in range(2):
            keras.backend.clear_session()
            keras.utils.set_random_seed(7)
            model = build("cnn", 784, 10, cell.net)
            model.compile(optimizer=optimizer("adam", 0.001), loss="sparse_categorical_crossentropy")
            trainer = Trainer(model, 128, tf.distribute.get_strategy(), 1, forward=training_forward(model))
            loss, _ = trainer._train_epoch(x, y)(tf.constant(epoch_order(len(x), 7, 0)), tf.zeros((0, 8)))
            ends.append({"loss": float(loss), "weights": [v.numpy() for v in model.variables]})
        first, second = ends
        differ = [i for i, (a, b) in enumerate(zip(first["weights"], second["weights"])) if not np.array_equal(a, b)]
        print(json.dumps({"losses": [first["loss"], second["loss"]], "differ": differ,
                          "variables": len(first["weights"])}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env(), cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["variables"] > 20  # convolutions, batch norms (with their statistics), the head
    assert out["losses"][0] == out["losses"][1]
    assert out["differ"] == []


class _NoLog:
    def rewind(self, epochs):
        pass

    def log_metric(self, name, value):
        pass

    def next_step(self):
        pass
