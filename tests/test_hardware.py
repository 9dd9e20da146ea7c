"""How the train stage splits a CPU and picks its arithmetic."""

from __future__ import annotations

import pytest

from mnist_doe.hardware import CpuPlan, cpu_has_bfloat16, cpu_plan, precision_policy


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
