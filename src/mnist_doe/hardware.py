"""Where the train stage computes: on GPUs when present, else on the CPU's cores, split the
way that measured fastest for each family (bench/README.md).

On a CPU, a training step of these small networks is a chain of small ops. One op spread
over all cores pays a synchronisation per op; two streams of ops, each with half the
cores, keep both busy: the two matrix products of every backward layer run side by side,
and a CNN splits each batch between two replicas (`MirroredStrategy` over two logical CPU
devices) whose gradients are summed, so the batch and the learning stay those of one
device. Thread pools and logical devices can only be set before TensorFlow starts its
runtime; a process that started it already (a notebook, a test session) keeps its own, and
so do `TF_NUM_INTRAOP_THREADS` / `TF_NUM_INTEROP_THREADS` when set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MIN_ROWS_PER_REPLICA = 16
CPU_FLAGS_WITH_BFLOAT16 = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class CpuPlan:
    replicas: int  # logical CPU devices that share every batch
    intra_op: int  # threads one op may use
    inter_op: int  # ops that may run at once


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_plan(family: str, batch_size: int, cores: int) -> CpuPlan:
    """Two streams of ops with half the cores each; CNNs also split every batch in two."""
    streams = min(2, cores)
    split = family == "cnn" and batch_size >= streams * MIN_ROWS_PER_REPLICA
    return CpuPlan(replicas=streams if split else 1, intra_op=max(1, cores // streams), inter_op=streams)


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


def _configure_cpu(plan: CpuPlan) -> int:
    """Apply `plan` if TensorFlow's runtime has not started; returns the logical CPU devices."""
    import tensorflow as tf

    try:
        if "TF_NUM_INTRAOP_THREADS" not in os.environ:
            tf.config.threading.set_intra_op_parallelism_threads(plan.intra_op)
        if "TF_NUM_INTEROP_THREADS" not in os.environ:
            tf.config.threading.set_inter_op_parallelism_threads(plan.inter_op)
        if plan.replicas > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * plan.replicas)
    except RuntimeError:  # runtime already started: keep what it has
        pass
    return len(tf.config.list_logical_devices("CPU"))


def strategy_for(family: str, batch_size: int):
    """The `tf.distribute` strategy a cell trains under (configuring the CPU on first use)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    if gpus:
        return tf.distribute.get_strategy()
    plan = cpu_plan(family, batch_size, cpu_cores())
    replicas = min(plan.replicas, _configure_cpu(plan))
    if replicas > 1:
        return tf.distribute.MirroredStrategy(
            [f"/cpu:{i}" for i in range(replicas)], cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    return tf.distribute.get_strategy()
