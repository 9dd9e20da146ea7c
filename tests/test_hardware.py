"""How the train stage splits a CPU and picks its arithmetic."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mnist_doe.engine.hardware import (
    CpuPlan, cpu_has_bfloat16, cpu_plan, cpu_share, native_lines_to_show, precision_policy, shared_plan,
)

PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
NO_DRIVER = ("I0000 00:00:1795535902.406917    7563 cudart_stub.cc:31] Could not find cuda drivers "
             "on your machine, GPU will not be used.")
CUINIT = ("E0000 00:00:1795535908.523943    7563 cuda_platform.cc:52] failed call to cuInit: "
          "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")


@pytest.mark.parametrize(
    ("family", "batch", "cores", "batch_norm", "plan"),
    [
        ("cnn", 32, 2, False, CpuPlan(splits=2, intra_op=1, inter_op=2)),
        ("dense", 64, 2, False, CpuPlan(splits=1, intra_op=1, inter_op=2)),
        ("lstm", 32, 2, False, CpuPlan(splits=1, intra_op=1, inter_op=2)),
        ("cnn", 31, 2, False, CpuPlan(splits=1, intra_op=1, inter_op=2)),  # under 16 rows a part
        ("cnn", 32, 2, True, CpuPlan(splits=1, intra_op=1, inter_op=2)),  # batch statistics
        ("cnn", 32, 1, False, CpuPlan(splits=1, intra_op=1, inter_op=1)),
        ("dense", 64, 16, False, CpuPlan(splits=1, intra_op=8, inter_op=2)),
        ("cnn", 128, 16, False, CpuPlan(splits=2, intra_op=8, inter_op=2)),
    ],
)
def test_cpu_plan(family, batch, cores, batch_norm, plan):
    assert cpu_plan(family, batch, cores, batch_norm) == plan


def test_a_share_of_the_threads_lowers_only_the_op_streams(monkeypatch):
    """MNIST_DOE_CPU_THREADS (one worker's share, set by mnist_doe.parallel) keeps the parts of
    a batch and the threads of an op, which decide the numbers; only op streams give way."""
    two_cores = cpu_plan("cnn", 32, 2)
    assert shared_plan(two_cores, 1) == CpuPlan(splits=2, intra_op=1, inter_op=1)
    assert shared_plan(two_cores, 2) == shared_plan(two_cores, None) == two_cores
    sixteen = cpu_plan("dense", 64, 16)
    assert shared_plan(sixteen, 8) == CpuPlan(splits=1, intra_op=8, inter_op=1)
    assert shared_plan(sixteen, 4) == CpuPlan(splits=1, intra_op=8, inter_op=1)  # never fewer threads per op
    monkeypatch.delenv("MNIST_DOE_CPU_THREADS", raising=False)
    assert cpu_share() is None
    monkeypatch.setenv("MNIST_DOE_CPU_THREADS", "3")
    assert cpu_share() == 3
    for bad in ("0", "-1", "two"):
        monkeypatch.setenv("MNIST_DOE_CPU_THREADS", bad)
        with pytest.raises(ValueError, match="MNIST_DOE_CPU_THREADS"):
            cpu_share()


def test_bfloat16_is_read_from_the_cpu_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 fma\n")
    assert cpu_has_bfloat16(info)
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f fma\n")
    assert not cpu_has_bfloat16(info)
    info.write_text("flags\t\t: fpu amx_bf16 amx_tile\n")
    assert cpu_has_bfloat16(info)
    assert not cpu_has_bfloat16(tmp_path / "missing")


@pytest.mark.parametrize(
    ("mixed", "gpus", "bf16", "policy"),
    [
        (False, 0, True, "float32"),
        (False, 2, True, "float32"),
        (True, 1, False, "mixed_float16"),
        (True, 1, True, "mixed_float16"),
        (True, 0, True, "mixed_bfloat16"),
        (True, 0, False, "float32"),
    ],
)
def test_precision_policy(mixed, gpus, bf16, policy):
    assert precision_policy(mixed, gpus, bf16) == policy


ONEDNN = ("I0000 00:00:1795611957.393402   10564 port.cc:153] oneDNN custom operations are on. You may see "
          "slightly different numerical results due to floating-point round-off errors from different "
          "computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.")


def test_start_up_notices_of_a_machine_without_cuda_drivers_are_held_back():
    other = "W0000 something TensorFlow wants the user to see"
    lines = [PREAMBLE, ONEDNN, NO_DRIVER, PREAMBLE, ONEDNN, NO_DRIVER, CUINIT, other]
    assert native_lines_to_show(lines) == [other]


def test_a_cuinit_failure_with_drivers_present_is_shown():
    assert native_lines_to_show([PREAMBLE, CUINIT]) == [CUINIT]


def test_importing_tensorflow_through_hardware_keeps_stderr_clean():
    code = (
        "import sys; from mnist_doe.engine import hardware; tf = hardware.import_tensorflow(); "
        "print(tf.reduce_sum(tf.ones(3)).numpy()); print('after import', file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3.0"
    assert "absl::InitializeLog" not in done.stderr
    assert "Could not find cuda drivers" not in done.stderr
    assert done.stderr.rstrip().endswith("after import")  # later output is not swallowed
