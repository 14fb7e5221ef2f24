"""Every op inference sends to the accelerator is float32 and has an MPS kernel; docs/ lists them."""

from __future__ import annotations

from pathlib import Path

import torch

from sidecar.triposr.device import cpu_path
from sidecar.triposr.op_audit import OpRecorder, audit_job

DOC = Path(__file__).resolve().parent.parent / "docs" / "device-ops.md"


def test_the_inference_path_suits_mps_and_the_doc_lists_it(tiny_weights):
    audit = audit_job(str(tiny_weights), tiny_weights / "input.png")
    assert audit.float64_on_device() == set()
    assert audit.unsupported_on_mps() == set()
    resampling = {"aten._upsample_bilinear2d_aa", "aten.upsample_bicubic2d"}
    assert resampling <= audit.ops("cpu")
    assert not resampling & audit.ops("device")
    assert DOC.read_text() == audit.markdown(), (
        "docs/device-ops.md is out of date: python -m sidecar.triposr.op_audit --write docs/device-ops.md"
    )


def test_the_recorder_catches_float64_and_unknown_ops_off_the_cpu_path():
    with OpRecorder() as recorder:
        torch.ones(3, dtype=torch.float64).cumsum(0)
        with cpu_path():
            torch.ones(3, dtype=torch.float64).cumprod(0)
    assert "aten.cumsum" in recorder.audit.float64_on_device()
    assert "aten.cumsum" in recorder.audit.unsupported_on_mps()
    assert "aten.cumprod" in recorder.audit.ops("cpu")
    assert "aten.cumprod" not in recorder.audit.float64_on_device() | recorder.audit.unsupported_on_mps()
