"""Choosing the accelerator: CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .errors import DeviceError

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")
PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# "auto": bfloat16 where the device computes it natively (the encode 1.8x as fast as float32 on a CPU with
# AVX512-BF16), float32 elsewhere, where bfloat16 is emulated and slower.
PRECISION_CHOICES = ("auto", *PRECISIONS)

_cpu_path = threading.local()


@contextmanager
def cpu_path() -> Iterator[None]:
    """Marks work that runs on the CPU whatever the device (resampling MPS lacks, grid building).

    It changes nothing at run time; the op audit (`op_audit.py`) lists the ops inside it apart from
    those that reach the accelerator.
    """
    outer = in_cpu_path()
    _cpu_path.active = True
    try:
        yield
    finally:
        _cpu_path.active = outer


def in_cpu_path() -> bool:
    return getattr(_cpu_path, "active", False)


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def usable_devices() -> list[str]:
    devices = []
    if torch.cuda.is_available():
        devices.append("cuda")
    if mps_available():
        devices.append("mps")
    return [*devices, "cpu"]


def select_device(name: str = "auto") -> torch.device:
    if name not in DEVICE_CHOICES and not name.startswith("cuda:"):
        raise DeviceError(f"Unknown device '{name}'; choose one of {', '.join(DEVICE_CHOICES)}.")
    if name == "auto":
        name = usable_devices()[0]
    kind = name.split(":")[0]
    if kind not in usable_devices():
        raise DeviceError(
            f"The {kind.upper()} device is not usable here: this PyTorch "
            f"({torch.__version__}) sees only {', '.join(usable_devices())}."
        )
    if kind == "mps" and os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK") != "1":
        raise DeviceError(
            "PYTORCH_ENABLE_MPS_FALLBACK=1 must be set before PyTorch is imported, or ops MPS lacks "
            "will fail; import the sidecar package before torch, or set the variable yourself."
        )
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """A readable name: the GPU model where PyTorch knows it."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple silicon)"
    return "cpu"


def resolve_precision(device: torch.device, precision: str) -> str:
    """The precision asked for, with "auto" made bfloat16 or float32 for this device."""
    if precision != "auto":
        return precision
    return "bfloat16" if native_bfloat16(device) else "float32"


def native_bfloat16(device: torch.device) -> bool:
    """Whether the device computes in bfloat16 natively, rather than by emulation."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)  # Ampere and later
    if device.type == "mps":
        return _macos_at_least(14) and "bf16" in cpu_features()  # the M2 and later, with the OS's support
    return bool({"avx512_bf16", "amx_bf16", "bf16"} & cpu_features())


@functools.cache
def cpu_features() -> frozenset[str]:
    """The CPU's feature flags as the OS lists them (Linux's /proc/cpuinfo, macOS's sysctl); empty where
    neither says, so that nothing is assumed."""
    if sys.platform == "darwin":
        answer = subprocess.run(
            ["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True, check=False
        )
        return frozenset({"bf16"} if answer.stdout.strip() == "1" else ())
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            lines = cpuinfo.read().splitlines()
    except OSError:
        return frozenset()
    flags = (line.split(":", 1)[1] for line in lines if line.startswith(("flags", "Features")))
    return frozenset(next(flags, "").split())


def backbone_dtype(device: torch.device, precision: str) -> torch.dtype:
    """The dtype for the backbone, refusing a half precision the device cannot run well."""
    if precision not in PRECISIONS:
        raise DeviceError(f"Unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}.")
    dtype = PRECISIONS[precision]
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError("This GPU has no bfloat16 support; use --precision float16.")
    if dtype == torch.bfloat16 and device.type == "mps" and not _macos_at_least(14):
        raise DeviceError("bfloat16 on MPS needs macOS 14 or newer; use --precision float16.")
    return dtype


def _macos_at_least(major: int) -> bool:
    check = getattr(torch.backends.mps, "is_macos_or_newer", None)
    return bool(check and check(major, 0))
