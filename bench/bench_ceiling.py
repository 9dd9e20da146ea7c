"""What this machine's cores can do: float32 matrix products per second, and what that allows each cell.

    python bench/bench_ceiling.py [--out bench/results]

Training these networks is mostly matrix products (dense layers, the LSTM's gates) and
convolutions. This measures how fast TensorFlow multiplies float32 matrices here:

- one large product (1024 x 1024 x 1024) on one thread, and on all cores as one op;
- the same on one thread in as many processes as there are cores at once (their sum is
  what all cores do when each works alone, the most the machine gives);
- products of the shapes the bench cells compute (batch 64 dense layers, batch 32 LSTM
  gates) on one thread.

It counts, from the train stage's own models, the multiply-adds of one training image
(forward and backward; no input gradient for the first layer, which reads data), and divides:
the images/s a cell would reach if every core did nothing but its matrix products at the
measured rate. `bench_train.py`'s results, when present, are set against that ceiling, with
the images/s its targets ask for.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from bench_train import CELLS, machine

SHAPES = {  # (rows, inner, columns) of the products the cells compute most
    "dense: batch x 784 by 784 x 200": (64, 784, 200),
    "dense: batch x 200 by 200 x 200": (64, 200, 200),
    "lstm: batch x 100 by 100 x 400": (32, 100, 400),
}


def gflops(m: int, k: int, n: int, threads: int, seconds: float = 1.0, tries: int = 3) -> float:
    """float32 GFLOP/s of repeated m x k by k x n products in one graph, on `threads` threads:
    the best of `tries` runs of about `seconds` each (a ceiling, so the least disturbed run)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    a, b = tf.random.uniform((m, k)), tf.random.uniform((k, n))

    @tf.function
    def run(a, b, count):
        # each product depends on the last, so none is skipped or run beside another
        def body(i, s):
            return i + 1, s + tf.matmul(a + s * 0, b)[0, 0]

        return tf.while_loop(lambda i, _: i < count, body, (tf.constant(0), tf.constant(0.0)))[1]

    count = 10
    while True:
        start = time.perf_counter()
        run(a, b, tf.constant(count)).numpy()
        elapsed = time.perf_counter() - start
        if elapsed > seconds / 4:
            break
        count *= 4
    count = max(1, int(count * seconds / elapsed))
    best = 0.0
    for _ in range(tries):
        start = time.perf_counter()
        run(a, b, tf.constant(count)).numpy()
        best = max(best, 2 * m * k * n * count / (time.perf_counter() - start) / 1e9)
    return best


def training_multiply_adds(family: str, layers: int, nodes: int) -> int:
    """Multiply-adds of one training image through the train stage's model of the cell."""
    from mnist_doe.engine.models import BUILDERS, Regularisation

    model = BUILDERS[family](784, 10, layers, nodes, Regularisation())
    total, first = 0, True
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Dense":
            forward = layer.kernel.shape[0] * layer.kernel.shape[1]
        elif kind == "Conv2D":
            height, width = layer.output.shape[1:3]
            forward = height * width * math.prod(layer.kernel.shape)
        elif kind == "LSTM":
            steps = layer.input.shape[1]
            inputs, gates = layer.cell.kernel.shape
            # forward and weight gradients of [x, h] by [W; U]; the gradient through h at every
            # step; the gradient through x unless x is the data
            total += 2 * steps * (inputs + layer.units) * gates + steps * layer.units * gates
            total += 0 if first else steps * inputs * gates
            first = False
            continue
        else:
            continue
        # forward, weight gradient, and input gradient unless the input is the data
        total += forward * (2 if first else 3)
        first = False
    return total


def worker(threads: int) -> None:
    print(json.dumps(gflops(1024, 1024, 1024, threads)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return

    from mnist_doe.engine.hardware import cpu_cores

    cores = cpu_cores()
    command = [sys.executable, __file__, "--worker", "1"]

    def in_processes(n: int) -> list[float]:
        procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(n)]
        return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]

    one_thread = in_processes(1)[0]
    every_core = in_processes(cores)
    all_threads = float(subprocess.run(
        [sys.executable, __file__, "--worker", str(cores)], stdout=subprocess.PIPE, text=True, check=True,
    ).stdout.strip().splitlines()[-1])
    shapes = {name: gflops(*shape, threads=1) for name, shape in SHAPES.items()}
    peak = sum(every_core)

    train_file = args.out / "train.json"
    trained = json.loads(train_file.read_text())["cells"] if train_file.is_file() else {}
    cells = {}
    for name, spec in CELLS.items():
        flop = 2 * training_multiply_adds(spec["family"], spec["layers"], spec["nodes"])
        cell = {"mflop_per_image": flop / 1e6, "ceiling_images_per_second": peak * 1e9 / flop}
        if name in trained:
            t = trained[name]
            cell["seed_images_per_second"] = t["seed"]["images_per_second"]
            cell["ours_images_per_second"] = t["ours"]["images_per_second"]
            cell["target_images_per_second"] = t["target_ratio"] * t["seed"]["images_per_second"]
        cells[name] = cell
    report = {
        "machine": machine(), "cores": cores, "one_thread_gflops": one_thread, "one_op_all_cores_gflops": all_threads,
        "one_thread_per_core_gflops": every_core, "machine_gflops": peak, "shapes_one_thread_gflops": shapes,
        "cells": cells, "load_average": os.getloadavg()[0],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ceiling.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "ceiling.md").write_text(markdown(report))
    print(markdown(report))


def markdown(r: dict) -> str:
    lines = [
        "# Matrix-product ceiling of this machine",
        "",
        "`python bench/bench_ceiling.py`, float32, TensorFlow's own matrix product, "
        f"{r['machine']['cpu']} ({r['machine']['vector']}), TensorFlow {r['machine']['tensorflow']}, "
        f"{r['cores']} cores, 1-minute load average {r['load_average']:.1f} at the end; "
        "each figure the best of 3 runs of about a second.",
        "",
        "| 1024 x 1024 x 1024 products | GFLOP/s |",
        "|---|---:|",
        f"| one thread | {r['one_thread_gflops']:.0f} |",
        f"| one op on {r['cores']} threads | {r['one_op_all_cores_gflops']:.0f} |",
        f"| {r['cores']} processes of one thread at once (sum) | {r['machine_gflops']:.0f} |",
    ]
    lines += [f"| one thread, {name} | {g:.0f} |" for name, g in r["shapes_one_thread_gflops"].items()]
    lines += [
        "",
        "Ceiling: the images/s of a cell whose every core did nothing but its matrix products, "
        "at the sum above (forward and backward multiply-adds of the train stage's model, counted "
        "as two operations each). Seed, ours and target from `train.json` when present.",
        "",
        "| cell | MFLOP / image | ceiling images/s | seed way | ours | target | target / ceiling | ours / ceiling |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in r["cells"].items():
        row = f"| {name} | {c['mflop_per_image']:.2f} | {c['ceiling_images_per_second']:,.0f} |"
        if "seed_images_per_second" in c:
            ceiling = c["ceiling_images_per_second"]
            row += (f" {c['seed_images_per_second']:,.0f} | {c['ours_images_per_second']:,.0f} |"
                    f" {c['target_images_per_second']:,.0f} | {c['target_images_per_second'] / ceiling:.0%} |"
                    f" {c['ours_images_per_second'] / ceiling:.0%} |")
        else:
            row += " | | | | |"
        lines.append(row)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
