"""`--precision auto`: bfloat16 where the device computes it natively, float32 everywhere else."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from sidecar.triposr import device, load_model, transformer

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        (set(), "float32"),  # nothing known: nothing assumed
        ({"avx2", "fma", "avx512f", "avx512bw"}, "float32"),  # AVX-512 without BF16 emulates it, slowly
        ({"avx512f", "avx512_bf16"}, "bfloat16"),
        ({"amx_tile", "amx_bf16"}, "bfloat16"),
        ({"asimd", "bf16"}, "bfloat16"),  # an ARM CPU with the BF16 extension
    ],
)
def test_auto_on_a_cpu_follows_its_bfloat16_instructions(monkeypatch, features, expected):
    monkeypatch.setattr(device, "cpu_features", lambda: features)
    assert device.resolve_precision(CPU, "auto") == expected


def test_auto_on_cuda_needs_ampere_or_later(monkeypatch):
    gpu = torch.device("cuda:0")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda _device=None: (7, 5))
    assert device.resolve_precision(gpu, "auto") == "float32"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda _device=None: (8, 6))
    assert device.resolve_precision(gpu, "auto") == "bfloat16"


def test_auto_on_mps_needs_macos_14_and_a_chip_with_bfloat16(monkeypatch):
    mps = torch.device("mps")
    monkeypatch.setattr(device, "_macos_at_least", lambda major: True)
    monkeypatch.setattr(device, "cpu_features", lambda: set())  # an M1
    assert device.resolve_precision(mps, "auto") == "float32"
    monkeypatch.setattr(device, "cpu_features", lambda: {"bf16"})
    assert device.resolve_precision(mps, "auto") == "bfloat16"
    monkeypatch.setattr(device, "_macos_at_least", lambda major: False)
    assert device.resolve_precision(mps, "auto") == "float32"


def test_a_precision_asked_for_by_name_is_kept(monkeypatch):
    monkeypatch.setattr(device, "cpu_features", lambda: {"avx512_bf16"})
    for precision in ("float32", "bfloat16", "float16"):
        assert device.resolve_precision(CPU, precision) == precision


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc/cpuinfo")
def test_this_machines_flags_are_read():
    """On Linux the flags come from /proc/cpuinfo: a real CPU lists some."""
    features = device.cpu_features()
    assert isinstance(features, frozenset)
    assert features, "this Linux machine's /proc/cpuinfo lists its flags"


def test_the_model_loads_with_the_precision_auto_picks(monkeypatch, tiny_weights):
    monkeypatch.setattr(device, "cpu_features", lambda: set())
    assert (
        load_model(str(tiny_weights), "cpu", precision="auto").backbone.proj_in.weight.dtype == torch.float32
    )
    monkeypatch.setattr(device, "cpu_features", lambda: {"avx512_bf16"})
    assert (
        load_model(str(tiny_weights), "cpu", precision="auto").backbone.proj_in.weight.dtype == torch.bfloat16
    )


@pytest.mark.parametrize(("queries", "keys"), [(600, 600), (600, 130)])  # self- and cross-attention
def test_half_precision_attention_on_a_cpu_matches_float32(monkeypatch, queries, keys):
    """The blocked half-precision path (more than one block of queries) against float32 SDPA: within what
    bfloat16's 8-bit mantissa allows, and every row a weighted mean of the values."""
    monkeypatch.setattr(transformer, "cpu_features", lambda: frozenset({"avx512_bf16"}))
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 3, n, 64, generator=generator) for n in (queries, keys, keys))
    expected = F.scaled_dot_product_attention(query, key, value)
    half = transformer.attend(query.bfloat16(), key.bfloat16(), value.bfloat16())
    assert half.dtype == torch.bfloat16 and half.shape == expected.shape
    error = (half.float() - expected).abs()
    assert error.max() < 0.03 and error.mean() < 0.002
    # with AMX, SDPA's own kernel multiplies in bfloat16 and is kept
    monkeypatch.setattr(transformer, "cpu_features", lambda: frozenset({"amx_bf16"}))
    sdpa = F.scaled_dot_product_attention(query.bfloat16(), key.bfloat16(), value.bfloat16())
    assert torch.equal(transformer.attend(query.bfloat16(), key.bfloat16(), value.bfloat16()), sdpa)
