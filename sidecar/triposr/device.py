"""Choosing the accelerator: CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .errors import DeviceError

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")
PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

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
