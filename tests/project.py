"""A throwaway copy of this project in its own git repo, for real `dvc repro` runs on tiny data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvc/config", ".dvc/plots", ".dvcignore", ".gitignore", "src", "data/external"]

TINY_CELLS = {
    "dense-2x32": {"family": "dense", "layers": 2, "nodes": 32, "optimizer": "adam", "learning_rate": 0.003},
    "cnn-1x8": {"family": "cnn", "layers": 1, "nodes": 8, "optimizer": "adam", "learning_rate": 0.002},
}


def env() -> dict[str, str]:
    """The environment a stage sees: this interpreter's bin first, quiet TensorFlow."""
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONHASHSEED": "0",
    }


def run(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command in `cwd` with the project's environment and capture its output."""
    done = subprocess.run(list(args), cwd=cwd, env=env(), capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {done.returncode}\nstdout:\n{done.stdout[-4000:]}\n"
            f"stderr:\n{done.stderr[-4000:]}"
        )
    return done


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(cwd, str(BIN / "dvc"), *args, check=check)


def make_project(dest: Path, overrides: dict | None = None) -> Path:
    """Copy the project's pipeline files into `dest`, apply params `overrides`, git-commit it."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif source.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    set_params(dest, overrides or {})
    run(dest, "git", "init", "-q", "-b", "main")
    run(dest, "git", "add", "-A")
    run(dest, "git", "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-q", "-m", "project")
    return dest


def shared_project(tmp_path_factory, name: str, build, dest: Path) -> Path:
    """A copy at `dest` of a project that `build(path)` makes once per test session.

    Under pytest-xdist every worker asks for it; the first builds it (e.g. a whole `dvc repro`)
    under a file lock in the session's shared temporary folder, the others wait for it, and each
    caller gets a copy of its own (git repo, DVC cache and outputs) to change as it likes."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the session's, shared by workers
    built, done = root / f"shared-{name}", root / f"shared-{name}.done"
    with FileLock(str(root / f"shared-{name}.lock")):
        if not done.exists():
            shutil.rmtree(built, ignore_errors=True)  # what a failed build left
            build(built)
            done.touch()
    shutil.copytree(built, dest, symlinks=True)
    return dest


def set_params(project: Path, overrides: dict) -> None:
    """Deep-merge `overrides` into the project's params.yaml (a dict value under `cells` replaces)."""
    path = project / "params.yaml"
    current = yaml.safe_load(path.read_text())
    _merge(current, overrides)
    path.write_text(yaml.safe_dump(current, sort_keys=False))


def _merge(base: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key != "cells":
            _merge(base[key], value)
        else:
            base[key] = value


def tiny_overrides(style: str = "fashion", epochs: int = 1, cells: dict | None = None) -> dict:
    """Params for a tiny run on data/external/{train,test}.csv written by mnist_doe.readers.tiny."""
    data = {"train_csv": "data/external/train.csv", "test_csv": "data/external/test.csv"}
    if style == "digit":
        data["test_labels_csv"] = "data/external/test_labels.csv"
    return {
        "data": data,
        "augment": {"copies": 1},
        "train": {"epochs": epochs, "batch_size": 32},
        "doe": {"cells": cells or TINY_CELLS},
    }


def kill_after(proc, progress, at_least: int, timeout: float = 240) -> int:
    """SIGKILL the running `proc` once `progress()` (e.g. epochs logged) reaches `at_least`;
    returns the progress it had made. Fails if `proc` finished first or never got there."""
    import signal
    import time

    deadline = time.monotonic() + timeout
    while progress() < at_least and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return progress()


def untimed(value):
    """A summary without its clock readings, which differ from run to run."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if "seconds" not in k and "per_second" not in k}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value
