"""Early stopping, the plateau rule and the multiply schedule with Keras 3's semantics: the
fast loop's rules against Keras' own callbacks on the same sequences of values, and real
training runs of both engines (their saved models, learning-rate curves and summaries)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mnist_doe import evaluate, train
from mnist_doe.common import files, params, paths, results
from mnist_doe.engine.callbacks import Plateau, Stopping, best_epochs, improved, multiply_rate

from conftest import DEFAULT_PARAMS
from test_loop import dense_model, trainer
from test_train import cell, digits, stage_dir  # noqa: F401  (fixture)

ENGINES = ["fast", "keras"]


def walks(count: int, seed: int, accuracy: bool) -> list[list[float]]:
    """Random walks of 12 values rounded to 2 digits, so that ties and plateaus occur."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        steps = rng.normal(0.01 if accuracy else -0.03, 0.04, 12)
        start = 0.5 if accuracy else 1.5
        out.append([float(v) for v in np.round(start + np.cumsum(steps), 2)])
    return out


def _keras_model(rate: float = 0.1):
    import keras

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(optimizer=keras.optimizers.SGD(rate), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def keras_early_stopping(values: list[float], monitor: str, **options) -> tuple:
    """(epochs run, Keras' best epoch, the epoch whose weights the model ends with) for
    Keras' EarlyStopping fed `values`; each epoch's weights hold its number."""
    import keras

    model = _keras_model()
    callback = keras.callbacks.EarlyStopping(monitor=monitor, mode="min" if monitor.endswith("loss") else "max",
                                             restore_best_weights=True, **options)
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    epochs = 0
    for epoch, value in enumerate(values):
        model.layers[0].kernel.assign([[float(epoch)]])
        callback.on_epoch_end(epoch, {monitor: value})
        epochs = epoch + 1
        if model.stop_training:
            break
    callback.on_train_end()
    return epochs, callback.best_epoch, int(model.get_weights()[0][0, 0])


def our_early_stopping(values: list[float], monitor: str, patience: int, min_delta: float) -> tuple:
    stopping = Stopping(patience, monitor, min_delta, restore_best_weights=True)
    epochs = 0
    for epoch, value in enumerate(values):
        epochs = epoch + 1
        if stopping.update(epoch, value, lambda epoch=epoch: [np.array(epoch)]):
            break
    return epochs, stopping.best_epoch, int(stopping.weights_at_end()[0])


@pytest.mark.parametrize("monitor", ["val_loss", "val_accuracy"])
@pytest.mark.parametrize("patience", [1, 2, 4])
@pytest.mark.parametrize("min_delta", [0.0, 0.015])
def test_early_stopping_decides_as_keras_early_stopping(monitor, patience, min_delta):
    """On 40 random sequences (ties included): the same epoch to stop at, the same best epoch
    and the same weights restored at the end as Keras' EarlyStopping(restore_best_weights=True)."""
    for values in walks(40, seed=patience, accuracy=monitor == "val_accuracy"):
        ours = our_early_stopping(values, monitor, patience, min_delta)
        theirs = keras_early_stopping(values, monitor, patience=patience, min_delta=min_delta)
        assert ours == theirs, (values, ours, theirs)


def test_improvement_follows_the_monitor_direction_and_min_delta():
    assert improved("val_loss", 0.5, None, 0.0) and improved("val_accuracy", 0.5, None, 0.0)
    assert improved("val_loss", 0.49, 0.5, 0.0) and not improved("val_loss", 0.51, 0.5, 0.0)
    assert improved("val_accuracy", 0.51, 0.5, 0.0) and not improved("val_accuracy", 0.49, 0.5, 0.0)
    assert not improved("val_loss", 0.49, 0.5, 0.02) and improved("val_loss", 0.47, 0.5, 0.02)
    assert not improved("val_accuracy", 0.5, 0.5, 0.0)  # a tie is no improvement


def keras_plateau_rates(values: list[float], rate: float, monitor: str, **options) -> list[float]:
    """The learning rate after each epoch of Keras' ReduceLROnPlateau fed `values`."""
    import keras

    model = _keras_model(rate)
    callback = keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode="min" if monitor.endswith("loss") else "max",
                                                 **options)
    callback.set_model(model)
    callback.on_train_begin()
    rates = []
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {monitor: value})
        rates.append(float(model.optimizer.learning_rate.numpy()))
    return rates


def our_plateau_rates(values: list[float], rate: float, monitor: str, **options) -> list[float]:
    plateau = Plateau(options["patience"], monitor, options["factor"], options["min_lr"], options["min_delta"],
                      options["cooldown"])
    rate = float(np.float32(rate))
    rates = []
    for value in values:
        reduced = plateau.update(value, rate)
        if reduced is not None:
            rate = float(np.float32(reduced))  # what the optimizer's float32 variable holds
        rates.append(rate)
    return rates


@pytest.mark.parametrize("monitor", ["val_loss", "val_accuracy"])
@pytest.mark.parametrize(("patience", "cooldown", "min_lr", "min_delta"),
                         [(1, 0, 0.0, 1e-4), (2, 0, 0.0, 0.0), (2, 1, 1e-3, 0.02), (3, 2, 0.005, 1e-4)])
def test_plateau_reduces_as_keras_reduce_lr_on_plateau(monitor, patience, cooldown, min_lr, min_delta):
    """On 40 random sequences of val_loss or val_accuracy: after every epoch, exactly the rate
    Keras' ReduceLROnPlateau leaves in the optimizer (cooldown and the floor min_lr included)."""
    options = {"patience": patience, "factor": 0.3, "cooldown": cooldown, "min_lr": min_lr, "min_delta": min_delta}
    reductions = 0
    for values in walks(40, seed=10 + patience, accuracy=monitor == "val_accuracy"):
        ours = our_plateau_rates(values, 0.1, monitor, **options)
        theirs = keras_plateau_rates(values, 0.1, monitor, **options)
        assert ours == theirs, (values, ours, theirs)
        reductions += len(set(theirs)) - 1
    assert reductions >= 10  # the sequences do hold plateaus


def test_a_plateau_after_improvements_reduces_once_per_patience():
    rates = our_plateau_rates([1.0, 0.9, 0.9, 0.9, 0.9, 0.8], 0.1, "val_loss", patience=2, factor=0.5, min_lr=0.0,
                              min_delta=0.0, cooldown=0)
    assert rates == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05])
    assert rates == keras_plateau_rates([1.0, 0.9, 0.9, 0.9, 0.9, 0.8], 0.1, "val_loss", patience=2, factor=0.5,
                                        min_lr=0.0, min_delta=0.0, cooldown=0)


def test_multiply_schedule_starts_at_decay_start_and_does_not_compound():
    rate = 0.1
    seen = []
    for epoch in range(6):
        rate = multiply_rate(epoch, rate, 0.5, decay_start=3)
        seen.append(rate)
    # epochs 1 and 2 at the base rate, then x0.5 per epoch: 0.1 * 0.5 ** (e - 3 + 1), not 0.5 ** (e(e+1)/2)
    assert seen == pytest.approx([0.1, 0.1, 0.05, 0.025, 0.0125, 0.00625])


def test_best_epochs_are_counted_from_one_and_take_the_first_of_ties():
    got = best_epochs([0.5, 0.7, 0.7, 0.6], [1.0, 0.8, 0.9, 0.8])
    assert got == {"best_val_accuracy": 0.7, "best_val_accuracy_epoch": 2, "min_val_loss": 0.8, "min_val_loss_epoch": 2}
    assert best_epochs([], [])["min_val_loss"] is None


# --- the fast loop ----------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("restore", [True, False])
def test_the_best_epoch_is_restored_at_the_end_without_a_stop(tmp_path, restore):
    """The rate blows up after epoch 2, so val_loss is best at epoch 2; patience 10 never stops
    5 epochs. Keras 3 restores the best epoch's weights at the end all the same."""
    x, y = digits()
    logged = []
    rate = lambda epoch, current: 0.01 if epoch < 2 else 50.0  # noqa: E731
    t = trainer(dense_model("sgd"))
    stopping = Stopping(10, "val_loss", 0.0, restore_best_weights=restore)
    epochs = t.fit((x[:300], y[:300]), (x[300:], y[300:]), epochs=5, seed=5, learning_rate=rate,
                   stopping=stopping, backup=tmp_path / "state.npz", fingerprint="f", log=logged.append)
    val_losses = [m["val_loss"] for m in logged]
    assert epochs == 5 and not stopping.stopped
    assert int(np.nanargmin(val_losses)) == 1 and not val_losses[-1] <= val_losses[1]
    final = t.evaluate(x[300:], y[300:])[0]
    if restore:
        assert final == pytest.approx(val_losses[1], rel=1e-5)
    else:
        assert final == pytest.approx(val_losses[-1], rel=1e-5, nan_ok=True)


@pytest.mark.slow
def test_callback_state_survives_a_resume(tmp_path):
    """Early stopping on val_accuracy, a plateau rule and the multiply schedule, interrupted
    after 3 epochs: the resumed run logs, stops and ends as the uninterrupted one."""
    x, y = digits()
    t_params = params.TrainParams(learning_rate=0.02, schedule="multiply", decay_rate=0.8, decay_start=2,
                                  patience=3, monitor="val_accuracy", plateau_patience=1, plateau_factor=0.5,
                                  plateau_min_delta=0.05)
    from mnist_doe.engine.callbacks import plateau_for, rate_schedule, stopping_for

    def run(model, epochs, backup, logged):
        t = trainer(model)
        return t.fit((x[:300], y[:300]), (x[300:], y[300:]), epochs=epochs, seed=5, learning_rate=rate_schedule(t_params),
                     stopping=stopping_for(t_params), plateau=plateau_for(t_params), backup=backup,
                     fingerprint="f", log=logged.append), t

    whole_log, first_log, resumed_log = [], [], []
    whole = dense_model("sgd", dropout=0.2)
    whole_epochs, _ = run(whole, 12, tmp_path / "a.npz", whole_log)
    run(dense_model("sgd", dropout=0.2), 3, tmp_path / "b.npz", first_log)
    resumed = dense_model("sgd", dropout=0.2, seed=99)
    resumed_epochs, _ = run(resumed, 12, tmp_path / "b.npz", resumed_log)
    assert resumed_epochs == whole_epochs
    assert first_log + resumed_log == whole_log
    rates = [m["learning_rate"] for m in whole_log]
    steps = [b / a for a, b in zip(rates, rates[1:])]
    assert steps and all(s < 1 for s in steps)  # multiply moved the rate every epoch ...
    assert any(abs(s - 0.8) > 1e-3 for s in steps)  # ... and the plateau rule at least once
    for a, b in zip(whole.variables, resumed.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# --- both engines, through the train stage ----------------------------------------------

def curve(cell_name: str, metric: str) -> list[float]:
    with (paths.LIVE_DIR / cell_name / "plots" / "metrics" / f"{metric}.tsv").open() as handle:
        return [float(r[metric]) for r in csv.DictReader(handle, delimiter="\t")]


def saved_val_proba(cell_name: str) -> np.ndarray:
    import keras

    model = keras.saving.load_model(paths.MODELS_DIR / cell_name / "model.keras", safe_mode=True)
    return model.predict(files.load_npz(paths.CLEAN_TRAIN)["pixels"][240:300], verbose=0)


def cross_entropy(proba: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(proba[np.arange(len(y)), y])))


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_saved_model_is_the_best_epochs_when_no_stop_happens(stage_dir, engine):
    """Adam at 0.02 over-fits 240 digits: val_loss is lowest well before epoch 25. Patience
    30 never stops the run; the saved model is the best epoch's all the same, and the
    summary names that epoch."""
    c = cell("dense", nodes=64, epochs=25, learning_rate=0.02, dropout=0.0, patience=30, engine=engine)
    summary = train.train_cell(c)
    losses = curve(c.name, "val_loss")
    best = int(np.argmin(losses))
    assert summary["epochs"] == 25 and len(losses) == 25
    assert best < 20 and losses[-1] > losses[best] * 1.2  # the setting does what the test needs
    y_val = digits()[1][240:300]
    assert cross_entropy(saved_val_proba(c.name), y_val) == pytest.approx(losses[best], rel=1e-4)
    assert summary["min_val_loss_epoch"] == best + 1
    assert summary["min_val_loss"] == pytest.approx(losses[best])
    accuracies = curve(c.name, "val_accuracy")
    assert summary["best_val_accuracy"] == max(accuracies)
    assert summary["best_val_accuracy_epoch"] == accuracies.index(max(accuracies)) + 1
    # evaluate copies them into metrics/doe.json's row of the cell
    row = evaluate.cell_metrics(
        summary, files.load_npz(paths.PREDICTIONS_DIR / f"{c.name}.npz"), results.load_truth())
    assert row["min_val_loss_epoch"] == best + 1 and row["best_val_accuracy_epoch"] == summary["best_val_accuracy_epoch"]
    assert row["min_val_loss"] == pytest.approx(losses[best], abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_early_stopping_on_val_accuracy_stops_where_keras_would(stage_dir, engine):
    """The run's own val_accuracy curve, fed to Keras' EarlyStopping, stops at the epoch the
    run stopped at, and the saved model has the best epoch's validation accuracy."""
    c = cell("dense", nodes=32, epochs=30, learning_rate=0.01, patience=2, monitor="val_accuracy", engine=engine)
    summary = train.train_cell(c)
    accuracies = curve(c.name, "val_accuracy")
    assert summary["epochs"] == len(accuracies) < 30  # stopped early
    epochs, best, restored = keras_early_stopping(accuracies + [0.0] * 3, "val_accuracy", patience=2)
    assert epochs == len(accuracies) and restored == best
    y_val = digits()[1][240:300]
    assert float((saved_val_proba(c.name).argmax(1) == y_val).mean()) == pytest.approx(accuracies[best], abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_min_delta_counts_small_gains_as_none(stage_dir, engine):
    """min_delta 10 on val_loss: no epoch after the first improves, so patience 2 stops after
    epoch 3 and the first epoch's weights are restored."""
    c = cell("dense", epochs=8, patience=2, min_delta=10.0, engine=engine)
    summary = train.train_cell(c)
    losses = curve(c.name, "val_loss")
    assert summary["epochs"] == 3 and len(losses) == 3
    y_val = digits()[1][240:300]
    assert cross_entropy(saved_val_proba(c.name), y_val) == pytest.approx(losses[0], rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_learning_rate_curves_of_multiply_and_plateau(stage_dir, engine):
    """multiply from epoch 3: 0.01, 0.01, 0.008, 0.0064, ...; a plateau rule that sees no
    improvement after the first epoch (min_delta 10) halves the rate after every epoch from
    the second on, down to its floor."""
    c = cell("dense", epochs=5, learning_rate=0.01, schedule="multiply", decay_rate=0.8, decay_start=3, engine=engine)
    train.train_cell(c)
    assert curve(c.name, "learning_rate") == pytest.approx([0.01, 0.01, 0.008, 0.0064, 0.00512], rel=1e-6)
    c = cell("dense", epochs=6, learning_rate=0.01, plateau_patience=1, plateau_factor=0.5, plateau_min_delta=10.0,
             plateau_min_lr=0.002, engine=engine)
    train.train_cell(c)
    assert curve(c.name, "learning_rate") == pytest.approx([0.01, 0.01, 0.005, 0.0025, 0.002, 0.002], rel=1e-6)


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"monitor": "loss"}, "'doe.cells.c.monitor' is 'loss'; choose one of val_loss, val_accuracy"),
        ({"plateau_factor": 1.0}, "'doe.cells.c.plateau_factor' must be in (0, 1)"),
        ({"plateau_patience": 2, "schedule": "step"}, "'doe.cells.c.plateau_patience' is 2 with schedule 'step'"),
        ({"decay_start": 0}, "'doe.cells.c.decay_start' must be >= 1"),
        ({"min_delta": -0.1}, "'doe.cells.c.min_delta' must be a finite number >= 0"),
        ({"engine": "torch"}, "'doe.cells.c.engine' is 'torch'; choose one of fast, keras"),
        ({"restore_best_weights": "yes"}, "'doe.cells.c.restore_best_weights' must be true or false"),
    ],
)
def test_bad_callback_keys_are_one_line_naming_the_cell_and_key(knobs, message):
    raw = json.loads(json.dumps(DEFAULT_PARAMS))
    raw["doe"]["cells"] = {"c": {"family": "dense", "layers": 1, "nodes": 8, **knobs}}
    with pytest.raises(params.ParamsError) as err:
        params.parse(raw)
    assert message in str(err.value) and "\n" not in str(err.value)
