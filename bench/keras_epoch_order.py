"""The row order of the notebooks' `model.fit`, and what it does to their accuracy.

    python bench/keras_epoch_order.py [--cell lstm-2x100] [--repeats 10] [--seed 200] [--epochs 5] [--out bench/results]

The notebooks set a global seed (`tf.random.set_seed`; the training bench calls
`keras.utils.set_random_seed`) and train with `model.fit(..., shuffle=True)`. With Keras 3's
TensorFlow backend, NumPy arrays are batched by a `tf.data` pipeline whose one random
permutation is re-created with the same seed when each epoch starts its iterator, so every
epoch replays the first epoch's row order. The train stage draws a new order every epoch
(`mnist_doe.engine.loop.epoch_order`). This script measures both halves of that:

1. order: a one-weight model trained for 3 epochs by `model.fit(shuffle=True)` after
   `keras.utils.set_random_seed`, recording the rows each step receives;
2. accuracy: the training bench's seed way for one cell, per seed twice: as the notebooks
   run it (one `model.fit` of all epochs) and reshuffled (one `model.fit` per epoch on a
   new permutation of the rows, `shuffle=False`), on the bench's images; held-out accuracy
   after the last epoch, mean difference ± the standard error of the per-seed differences.
   The two share everything but the order, so the difference is what the replayed order
   costs or gains. Compare with the training bench's `ours` at the same seeds
   (`bench_train.py --seed`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_train  # noqa: E402


def orders_of_fit(epochs: int = 3, rows: int = 40, seed: int = 1) -> list[list[int]]:
    """The rows, in order, that each epoch of `model.fit(shuffle=True)` trains on."""
    import keras
    import tensorflow as tf

    seen: list[list[int]] = []

    class Recorder(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

        def train_step(self, data):
            x, _ = data
            tf.py_function(lambda v: seen.append([int(i) for i in v.numpy().ravel()]), [x], [])
            return {"rows": tf.reduce_sum(x)}

    keras.utils.set_random_seed(seed)
    model = Recorder()
    model.compile(optimizer="sgd", loss="mse")
    x = np.arange(rows, dtype=float).reshape(-1, 1)
    model.fit(x, np.zeros(rows), batch_size=rows, epochs=epochs, shuffle=True, verbose=0)
    return seen


def fit_reshuffled(spec: dict, data: dict, epochs: int, seed: int) -> float:
    """The seed way with a new row order every epoch; held-out accuracy after the last."""
    import keras

    keras.utils.set_random_seed(seed)
    x, x_val = bench_train.seed_arrays(spec, data, "x_fit"), bench_train.seed_arrays(spec, data, "x_val")
    model = bench_train.seed_model(spec)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        rows = rng.permutation(len(x))
        model.fit(x[rows], data["y_fit"][rows], batch_size=spec["batch_size"], epochs=1, shuffle=False,
                  validation_data=(x_val, data["y_val"]), verbose=0)
    proba = model.predict(bench_train.seed_arrays(spec, data, "x_test"), verbose=0)
    return float((proba.argmax(1) == data["y_test"]).mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", default="lstm-2x100", choices=sorted(bench_train.CELLS))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=200, help="seed of the first repeat")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-images", type=int, default=12_000)
    parser.add_argument("--val-images", type=int, default=2_000)
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    started = time.perf_counter()
    seen = orders_of_fit()
    replayed = all(order == seen[0] for order in seen[1:])
    print(f"model.fit(shuffle=True), 3 epochs of 40 rows: first rows {[o[:6] for o in seen]}; "
          f"{'the same order every epoch' if replayed else 'a new order each epoch'}", flush=True)

    data, source = bench_train.load_images(args.train_images, args.val_images, args.test_images)
    spec = bench_train.CELLS[args.cell]
    runs = []
    for repeat in range(args.repeats):
        seed = args.seed + repeat
        as_run = bench_train.fit_seed(spec, data, args.epochs, seed)["test_accuracy"]
        reshuffled = fit_reshuffled(spec, data, args.epochs, seed)
        runs.append({"seed": seed, "as_run": as_run, "reshuffled": reshuffled})
        print(f"seed {seed}: as run {as_run:.4f}, reshuffled {reshuffled:.4f}", flush=True)

    differences = [100 * (r["reshuffled"] - r["as_run"]) for r in runs]
    report = {
        "setup": {"data": source, "cell": args.cell, "epochs": args.epochs, "repeats": args.repeats,
                  "seed": args.seed, "train_images": len(data["y_fit"]), "test_images": len(data["y_test"])},
        "machine": bench_train.machine(),
        "fit_orders": seen,
        "same_order_every_epoch": replayed,
        "runs": runs,
        "as_run_accuracy": round(statistics.mean(r["as_run"] for r in runs), 4),
        "reshuffled_accuracy": round(statistics.mean(r["reshuffled"] for r in runs), 4),
        "difference_points": round(statistics.mean(differences), 2),
        "difference_points_se": round(bench_train.standard_error(differences), 2),
        "seconds": round(time.perf_counter() - started, 1),
    }
    s = report["setup"]
    sizes = "".join(f" --{name.replace('_', '-')} {getattr(args, name)}" for name in ("train_images", "val_images", "test_images")
                    if getattr(args, name) != parser.get_default(name))
    md = "\n".join([
        "# The notebooks' row order and their accuracy",
        "",
        f"`python bench/keras_epoch_order.py --cell {s['cell']} --repeats {s['repeats']} --seed {s['seed']} "
        f"--epochs {s['epochs']}{sizes}`: {s['train_images']:,} training and {s['test_images']:,} held-out images "
        f"of {s['data']}; Keras {report['machine']['keras']}, TensorFlow {report['machine']['tensorflow']}.",
        "",
        f"- `model.fit(shuffle=True)` after `keras.utils.set_random_seed`, 3 epochs of 40 rows: "
        f"{'the same row order every epoch' if replayed else 'a new row order each epoch'} "
        f"(first rows per epoch: {', '.join(str(o[:6]) for o in seen)}).",
        f"- {s['cell']}, the seed way after {s['epochs']} epochs, mean of {s['repeats']} seeds: as the "
        f"notebooks run it {report['as_run_accuracy']:.4f}, with a new order every epoch "
        f"{report['reshuffled_accuracy']:.4f}; difference {report['difference_points']:+.2f} ± "
        f"{report['difference_points_se']:.2f} points (standard error of the per-seed differences).",
        "",
        f"Total time: {report['seconds']:.0f} s.",
        "",
    ])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "keras_epoch_order.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "keras_epoch_order.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
