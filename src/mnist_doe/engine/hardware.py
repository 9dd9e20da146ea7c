"""How the train stage uses a CPU's cores (split the way that measured fastest for each
family, bench/README.md) and which arithmetic `mixed_precision` picks on CPU and GPU.

On a CPU, a training step of these small networks is a chain of small ops. One op spread
over all cores pays a synchronisation per op; two streams of ops, each with half the
cores, keep both busy: the two matrix products of every backward layer run side by side,
and a CNN computes each batch as two halves whose gradients are summed (the same gradient
as the whole batch). Thread pools can only be set before TensorFlow starts its runtime; a
process that started it already (a notebook, a test session) keeps its own, and so do
`TF_NUM_INTRAOP_THREADS` / `TF_NUM_INTEROP_THREADS` when set.

Several cells training at once on one machine (`mnist_doe.parallel`) each get a share of
its threads, `MNIST_DOE_CPU_THREADS`. The share lowers only the number of op streams: the
parts a batch is computed in and the threads of one op are planned from the machine's cores
as in a serial run, since they decide the order of the sums and so the numbers (measured on
a 2-core EPYC: a CNN planned for 1 core instead of 2, one part instead of two, ends 0.26
apart in its predicted probabilities after 2 epochs; 2 threads per op instead of 1, 5e-7
apart), while the number of op streams changes nothing (equal to the bit, every family).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

MIN_ROWS_PER_PART = 16
CPU_FLAGS_WITH_BFLOAT16 = ("avx512_bf16", "amx_bf16")
# what TensorFlow's native code prints when it starts on a machine without CUDA drivers,
# before its logging (and so TF_CPP_MIN_LOG_LEVEL) is in force
ABSL_PREAMBLE = re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$")
NO_CUDA_DRIVER = re.compile(r"\] Could not find cuda drivers on your machine, GPU will not be used\.$")
CUINIT_FAILED = re.compile(r"\] failed call to cuInit: ")
# printed where oneDNN is on by default (AVX-512 VNNI/BF16, AMX); README says that CPUs of
# other vector instructions add up in another order, so metrics can differ slightly
ONEDNN_NOTICE = re.compile(r"\] oneDNN custom operations are on\. ")


@dataclass(frozen=True)
class CpuPlan:
    splits: int  # independent parts every batch is computed in
    intra_op: int  # threads one op may use
    inter_op: int  # ops that may run at once


THREADS_ENV = "MNIST_DOE_CPU_THREADS"


def cpu_cores() -> int:
    """The cores this process may run on (its CPU affinity). The plan, and so the numbers,
    follow them; `MNIST_DOE_CPU_THREADS` leaves them alone."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_share() -> int | None:
    """The threads this process may keep busy when it shares the machine with other cells
    (`MNIST_DOE_CPU_THREADS`, which `mnist_doe.parallel` sets per worker); None when unset."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{THREADS_ENV}={value!r}: expected a whole number of threads, 1 or more")
    return int(value)


def shared_plan(plan: CpuPlan, threads: int | None) -> CpuPlan:
    """`plan` fitted to a share of `threads`: fewer op streams (at least one), the same parts
    and threads per op, so a cell trains to the same numbers as with the whole machine."""
    if threads is None:
        return plan
    return CpuPlan(plan.splits, plan.intra_op, max(1, min(plan.inter_op, threads // plan.intra_op)))


def cpu_plan(family: str, batch_size: int, cores: int, batch_norm: bool = False) -> CpuPlan:
    """Two streams of ops with half the cores each; CNNs also compute every batch in two parts
    (not with batch normalisation, whose statistics would then be those of half a batch)."""
    streams = min(2, cores)
    split = family == "cnn" and not batch_norm and batch_size >= streams * MIN_ROWS_PER_PART
    return CpuPlan(splits=streams if split else 1, intra_op=max(1, cores // streams), inter_op=streams)


def configure_threads(plan: CpuPlan) -> tuple[int, int]:
    """Apply `plan`'s thread pools, within this process's share of the machine
    (`MNIST_DOE_CPU_THREADS`, `shared_plan`), unless the runtime has started; returns those in use."""
    import tensorflow as tf

    plan = shared_plan(plan, cpu_share())

    try:
        if "TF_NUM_INTRAOP_THREADS" not in os.environ:
            tf.config.threading.set_intra_op_parallelism_threads(plan.intra_op)
        if "TF_NUM_INTEROP_THREADS" not in os.environ:
            tf.config.threading.set_inter_op_parallelism_threads(plan.inter_op)
    except RuntimeError:  # runtime already started: keep its pools
        pass
    threading = tf.config.threading
    # 0 is TensorFlow's default: as many threads as cores
    return threading.get_intra_op_parallelism_threads() or cpu_cores(), threading.get_inter_op_parallelism_threads() or cpu_cores()


def cpu_has_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when the CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX)."""
    try:
        flags = next((line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in CPU_FLAGS_WITH_BFLOAT16)


def precision_policy(mixed: bool, gpus: int, cpu_bfloat16: bool) -> str:
    """Keras dtype policy: float16 on GPUs, bfloat16 on CPUs that compute it natively, else
    float32 (a CPU without bfloat16 instructions would emulate it, slower than float32)."""
    if not mixed:
        return "float32"
    if gpus:
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_bfloat16 else "float32"


def native_lines_to_show(lines: list[str]) -> list[str]:
    """The lines of TensorFlow's start-up output worth showing: all but the notices that a
    machine without CUDA drivers has none (and so cannot initialise CUDA) and that oneDNN is
    on. A cuInit failure on a machine that has drivers is shown."""
    no_driver = any(NO_CUDA_DRIVER.search(line) for line in lines)
    return [
        line for line in lines
        if not ABSL_PREAMBLE.match(line)
        and not NO_CUDA_DRIVER.search(line)
        and not ONEDNN_NOTICE.search(line)
        and not (no_driver and CUINIT_FAILED.search(line))
    ]


def import_tensorflow():
    """Import TensorFlow and look for GPUs, holding back the native notices of a machine
    without CUDA drivers (`native_lines_to_show`); anything else written meanwhile reaches
    stderr afterwards. The train stage says itself whether it runs on CPU or GPU."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            lines = caught.read().decode(errors="replace").splitlines()
            sys.stderr.write("".join(f"{line}\n" for line in native_lines_to_show(lines)))
            sys.stderr.flush()
    return tf
