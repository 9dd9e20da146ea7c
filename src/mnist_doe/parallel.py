"""Several cells at once, on one machine or several: DVC's run-cache does the bookkeeping.

    python -m mnist_doe.parallel --jobs 2               # this machine, 2 cells at a time, then the summary stages
    python -m mnist_doe.parallel --worker 1/2 --push    # machine 1 of 2: its half of the cells, pushed
    dvc repro --pull                                    # the machine that collects: trains nothing

With `--jobs N` the upstream stages run once (`dvc repro` of the stages the train stage reads
from), then N workers train the `train@<cell>` instances that `dvc status` finds out of date,
a cell at a time each, taking the next cell when one is done. A worker is a workspace of its
own under .dvc/tmp/parallel/: dvc.yaml, params.yaml, dvc.lock and the train stage's source
dependencies copied from this workspace as they stand (committed or not), the upstream outputs
checked out of this workspace's DVC cache, which the worker uses as its own (`cache.dir`);
it runs `dvc repro --single-item train@<cell>`, so the cell's outputs and its run-cache entry
land in that cache. Then `dvc repro` here finds each cell in the run-cache ("Stage
'train@<cell>' is cached - skipping run, checking out outputs"), trains nothing and runs the
summary stages: the same outputs and the same dvc.lock as a serial `dvc repro`.

Each worker gets its share of the CPU threads, `MNIST_DOE_CPU_THREADS` = cores // workers,
which lowers only the number of op streams a cell runs (`engine.hardware.shared_plan`): the
parts of a batch and the threads of one op change the numbers and stay as in a serial run.
scikit-learn's OpenBLAS threads are left at the machine's count for the same reason (1
thread instead of 2 moved a logistic regression's probabilities by 0.007). On a GPU machine
each worker gets its own GPUs (`CUDA_VISIBLE_DEVICES`) when there are as many as workers,
else they share them with memory growth on (`TF_FORCE_GPU_ALLOW_GROWTH`).

With `--worker K/N` (or `--cells a,b`) this machine trains only its share of the cells,
every N-th in dvc.yaml's order from the K-th, and writes no report; `--push` then sends the
outputs and the run-cache to the DVC remote (`dvc push --run-cache`). The machine that
collects runs `dvc repro --pull`: it pulls the run-cache and each cell's outputs and trains
nothing that a worker pushed.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from .common.words import plural
from .engine import hardware

TRAIN = "train"  # the foreach stage of dvc.yaml: train@<cell>
WORK_DIR = Path(".dvc/tmp/parallel")  # beside DVC's own experiment workspaces (.dvc/tmp/exps)
BACKUP_DIR = ".train_backup"  # train.py's per-cell backups: shared, so a cell resumes anywhere
COPIED = ["dvc.yaml", "params.yaml", "dvc.lock", ".dvcignore", ".dvc/config", ".dvc/plots"]
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
CACHED = re.compile(r"Stage '(train@[^']+)' is cached - skipping run")
RAN = re.compile(r"Running stage '(train@[^']+)'")


class ParallelError(RuntimeError):
    """What stops a parallel run: the message says what and where (a worker's log)."""


def dvc_command() -> str:
    """The dvc beside this interpreter (the project's venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "dvc"
    return str(beside) if beside.exists() else "dvc"


def say(message: str) -> None:
    print(f"parallel: {message}", flush=True)


def dvc(cwd: Path, *args: str, env: dict | None = None, echo: bool = False, merge: bool = True) -> str:
    """Run dvc in `cwd`; its output (echoed as it comes when `echo`; stdout only unless
    `merge`), or ParallelError."""
    command = [dvc_command(), *args]
    if not merge:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise ParallelError(f"`dvc {' '.join(args)}` in {cwd} exited {done.returncode}\n"
                                f"{(done.stdout + done.stderr)[-3000:]}")
        return done.stdout
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1)
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if echo:
                sys.stdout.write(line)
                sys.stdout.flush()
    finally:
        process.stdout.close()
        code = process.wait()
    output = "".join(lines)
    if code != 0:
        shown = "" if echo else "\n" + output[-3000:]
        raise ParallelError(f"`dvc {' '.join(args)}` in {cwd} exited {code}{shown}")
    return output


# ---------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Pipeline:
    cells: list[str]  # train@<cell>, in dvc.yaml's (params.yaml's) order
    upstream: list[str]  # stages whose outputs the train stage reads
    checked_out: list[str]  # those outputs: checked out of the cache into a worker
    copied: list[str]  # the train stage's other dependencies: copied into a worker


def _out_paths(stage: dict) -> list[str]:
    paths = []
    for key in ("outs", "metrics", "plots"):
        for out in stage.get(key) or []:
            paths.append(out if isinstance(out, str) else next(iter(out)))
    return paths


def _overlaps(a: str, b: str) -> bool:
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def what_a_worker_needs(stages: dict) -> tuple[list[str], list[str], list[str]]:
    """From dvc.yaml's stages: the stages whose outputs the train stage reads, those outputs
    (checked out into a worker) and the train stage's other dependencies (copied)."""
    train = stages.get(TRAIN)
    if not isinstance(train, dict) or "foreach" not in train:
        raise ParallelError(f"dvc.yaml has no foreach stage {TRAIN!r}")
    deps = list(train["do"].get("deps") or [])
    if any("${" in dep for dep in deps):
        raise ParallelError(f"dvc.yaml: a dependency of {TRAIN} depends on the cell ({deps}); not supported here")
    upstream, checked_out = [], []
    for name, stage in stages.items():
        if name == TRAIN or "foreach" in stage:
            continue
        hits = [dep for dep in deps if any(_overlaps(dep, out) for out in _out_paths(stage))]
        if hits:
            upstream.append(name)
            checked_out.extend(dep for dep in hits if dep not in checked_out)
    return upstream, checked_out, [dep for dep in deps if dep not in checked_out]


def read_pipeline(root: Path) -> Pipeline:
    """The train instances (`dvc stage list`) and what a worker needs to train one."""
    upstream, checked_out, copied = what_a_worker_needs(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])
    listed = dvc(root, "stage", "list", "--name-only", merge=False).split()
    cells = [name for name in listed if name.startswith(f"{TRAIN}@")]
    return Pipeline(cells, upstream, checked_out, copied)


def parse_worker(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise argparse.ArgumentTypeError(f"{text!r}: expected K/N with 1 <= K <= N, e.g. 1/2")
    return int(match.group(1)), int(match.group(2))


def share(cells: list[str], worker: tuple[int, int]) -> list[str]:
    """Worker K of N: every N-th cell from the K-th, so each family spreads over the machines."""
    k, n = worker
    return cells[k - 1::n]


def out_of_date(root: Path, cells: list[str]) -> list[str]:
    """The cells `dvc status` finds changed (or never run), in their order."""
    if not cells:
        return []
    changed = json.loads(dvc(root, "status", "--json", *cells, merge=False) or "{}")
    return [cell for cell in cells if cell in changed]


SLOW_FAMILIES = {"lstm": 3, "cnn": 2}  # the families that train longest (bench/README.md)


def longest_first(root: Path, cells: list[str]) -> list[str]:
    """`cells` in the order workers take them: the longest first, so that no long cell is left
    to run alone at the end. A cell's last training time under timings/ where there is one;
    cells without one go first, the slower families first, then the bigger networks. Only
    the order changes: each cell trains as it would alone."""
    try:
        declared = yaml.safe_load((root / "params.yaml").read_text())["doe"]["cells"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        declared = {}

    def cost(cell: str) -> tuple:
        name = cell.split("@", 1)[1]
        timing = root / "timings" / f"{name}.json"
        try:
            return (0, -float(json.loads(timing.read_text())["train_seconds"]))
        except (OSError, ValueError, KeyError, TypeError):
            spec = declared.get(name) if isinstance(declared.get(name), dict) else {}
            layers, nodes = spec.get("layers", 1), spec.get("nodes", 1)
            size = layers * nodes if isinstance(layers, int) and isinstance(nodes, int) else 1
            return (-1, -SLOW_FAMILIES.get(spec.get("family"), 1), -size)

    return sorted(cells, key=lambda cell: (cost(cell), cells.index(cell)))


def visible_gpus() -> list[str]:
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES when set, else nvidia-smi's list."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        ids = [g.strip() for g in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
        return [] if ids in ([], ["-1"]) else ids
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(line for line in listed.splitlines() if line.startswith("GPU "))]


def worker_env(index: int, workers: int, cores: int, gpus: list[str]) -> dict[str, str]:
    """The environment of worker `index` (0-based) of `workers`: its share of the machine."""
    env = {**os.environ, hardware.THREADS_ENV: str(max(1, cores // workers))}
    if len(gpus) >= workers:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus[index::workers])
    elif gpus:
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    return env


# ---------------------------------------------------------------------------------- workers


def cache_dir(root: Path) -> Path:
    return Path(dvc(root, "cache", "dir", merge=False).strip().splitlines()[-1]).resolve()


def prepare_workspace(root: Path, path: Path, cache: Path, pipeline: Pipeline) -> None:
    """A workspace that trains with this one's cache: its pipeline files and the train stage's
    source dependencies copied as they stand here, the upstream outputs checked out."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    for name in [*COPIED, *pipeline.copied]:
        source, target = root / name, path / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=IGNORED)
        elif source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    # no git: a worker's own dvc.lock and .gitignore files are thrown away with it
    (path / ".dvc/config.local").write_text(
        "[core]\n    no_scm = true\n"
        f"[cache]\n    dir = {cache}\n    type = \"reflink,hardlink,copy\"\n"
    )
    (root / BACKUP_DIR).mkdir(exist_ok=True)
    (path / BACKUP_DIR).symlink_to(root.resolve() / BACKUP_DIR, target_is_directory=True)
    dvc(path, "checkout", *pipeline.checked_out)


@dataclass
class Done:
    cell: str
    worker: int
    seconds: float
    how: str  # "trained" or "restored"


def train_on_workers(root: Path, pipeline: Pipeline, cells: list[str], workers: int, keep: bool) -> list[Done]:
    """Train `cells` on `workers` workspaces at once; each takes the next cell when it is free."""
    cores, gpus = hardware.cpu_cores(), visible_gpus()
    cache = cache_dir(root)
    base, logs = root / WORK_DIR, root / WORK_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    gpu_word = ""
    if gpus:
        gpu_word = (", one GPU set each" if len(gpus) >= workers
                    else f", sharing {plural(len(gpus), 'GPU')} with memory growth")
    say(f"{plural(len(cells), 'cell')} on {workers} workers, {max(1, cores // workers)} of {cores} CPU threads each"
        f" ({hardware.THREADS_ENV}){gpu_word}; logs in {logs.relative_to(root)}/")
    todo: queue.Queue[str] = queue.Queue()
    for cell in cells:
        todo.put(cell)
    done: list[Done] = []
    failures: list[str] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        path = base / f"worker-{index + 1}"
        try:
            prepare_workspace(root, path, cache, pipeline)
        except (ParallelError, OSError) as err:
            with lock:
                failures.append(f"worker {index + 1}: preparing {path}: {err}")
            return
        env = worker_env(index, workers, cores, gpus)
        while not failures:
            try:
                cell = todo.get_nowait()
            except queue.Empty:
                break
            log = logs / f"{cell.split('@', 1)[1]}.log"
            began = time.perf_counter()
            try:
                output = dvc(path, "repro", "--single-item", cell, env=env)
            except ParallelError as err:
                log.write_text(str(err))
                with lock:
                    failures.append(f"{cell} failed on worker {index + 1} (workspace kept: {path}; log: {log}):"
                                    f"\n{str(err)[-2000:]}")
                return
            log.write_text(output)
            seconds = time.perf_counter() - began
            how = "trained" if RAN.search(output) else "restored" if CACHED.search(output) else "up to date"
            with lock:
                done.append(Done(cell, index + 1, seconds, how))
                say(f"{cell}: {how} by worker {index + 1} in {seconds:.1f} s ({len(done)}/{len(cells)})")
            copy_timing(path, root, cell)
        if not keep:
            shutil.rmtree(path, ignore_errors=True)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise ParallelError("\n".join(failures))
    return done


def copy_timing(workspace: Path, root: Path, cell: str) -> None:
    """A cell's timings/ file (machine-dependent, tracked by neither git nor DVC) comes back here."""
    name = f"{cell.split('@', 1)[1]}.json"
    source = workspace / "timings" / name
    if source.exists():
        (root / "timings").mkdir(exist_ok=True)
        shutil.copy2(source, root / "timings" / name)


# ---------------------------------------------------------------------------------- the run


def run(root: Path, jobs: int, mine: list[str] | None, push: bool, remote: str | None, keep: bool) -> dict:
    """Train the design's cells (or `mine`) with `jobs` workers, then `dvc repro` here."""
    began = time.perf_counter()
    pipeline = read_pipeline(root)
    cells = pipeline.cells if mine is None else mine
    if mine is not None and not cells:
        say("no cells in this share: nothing to do")
        return {"cells": [], "trained_by_workers": [], "restored_here": [], "trained_here": []}
    trained: list[Done] = []
    if jobs > 1 and cells:
        if pipeline.upstream:
            say(f"upstream stages: dvc repro {' '.join(pipeline.upstream)}")
            dvc(root, "repro", *pipeline.upstream, echo=True)
        pending = longest_first(root, out_of_date(root, cells))
        workers = min(jobs, len(pending))
        if workers > 1:
            trained = train_on_workers(root, pipeline, pending, workers, keep)
        else:
            say(f"{plural(len(pending), 'cell')} to train: no workers needed")
    workers_done = time.perf_counter()
    targets = [] if mine is None else cells
    say(f"dvc repro {' '.join(targets)}".rstrip())
    output = dvc(root, "repro", *targets, echo=True)
    in_main = RAN.findall(output)
    if in_main and trained:
        say(f"warning: trained here, not by a worker (no run-cache entry matched): {', '.join(in_main)}")
    if push:
        say("dvc push --run-cache" + (f" -r {remote}" if remote else ""))
        dvc(root, "push", "--run-cache", *(["-r", remote] if remote else []), echo=True)
    summary = {
        "cells": cells,
        "trained_by_workers": [d.cell for d in trained if d.how == "trained"],
        "restored_here": CACHED.findall(output),
        "trained_here": in_main,
        "worker_seconds": round(workers_done - began, 1),
        "total_seconds": round(time.perf_counter() - began, 1),
    }
    say(f"{plural(len(summary['trained_by_workers']), 'cell')} trained by workers, {len(in_main)} here; "
        f"{summary['total_seconds']:.1f} s in all")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_doe.parallel", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", "-j", type=int, default=2, help="cells trained at once on this machine (default 2)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--worker", type=parse_worker, metavar="K/N",
                       help="train only machine K's share of N (every N-th cell from the K-th); no report")
    which.add_argument("--cells", metavar="A,B", help="train only these cells (names as in params.yaml); no report")
    parser.add_argument("--push", action="store_true", help="then dvc push --run-cache (outputs and run-cache)")
    parser.add_argument("--remote", "-r", help="the DVC remote to push to (default: the project's default remote)")
    parser.add_argument("--keep", action="store_true", help="keep the workers' workspaces under .dvc/tmp/parallel/")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be 1 or more")
    root = Path.cwd()
    try:
        mine = None
        if args.worker or args.cells:
            cells = read_pipeline(root).cells
            if args.worker:
                mine = share(cells, args.worker)
                say(f"worker {args.worker[0]}/{args.worker[1]}: {', '.join(mine) or 'no cells'}")
            else:
                names = [f"{TRAIN}@{c.strip().removeprefix(TRAIN + '@')}" for c in args.cells.split(",") if c.strip()]
                unknown = [n for n in names if n not in cells]
                if unknown:
                    parser.error(f"no such cells: {', '.join(unknown)} (cells: {', '.join(cells)})")
                mine = names
        run(root, args.jobs, mine, args.push, args.remote, args.keep)
    except ParallelError as err:
        print(f"parallel: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    raise SystemExit(main())
