"""Which PyTorch ops inference runs, with which dtypes, and whether each would suit Apple's MPS.

A dispatch mode sees every ATen op as it runs. Ops inside `device.cpu_path()` run on the CPU whatever
the device; all others run on the accelerator, so they must be float32 or lower (MPS has no float64)
and have an MPS kernel. On a real MPS device the same mode counts the ops that fell back to the CPU.

    python -m sidecar.triposr.op_audit --write docs/device-ops.md
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .device import in_cpu_path

# Ops that our inference sends to the accelerator and that have MPS kernels, checked against
# PyTorch's `aten/src/ATen/native/mps` sources (the ops MPS lacks in older releases, antialiased and
# bicubic resampling, run in `cpu_path()` instead). View and metadata ops need no kernel of their own.
MPS_SUPPORTED = frozenset(
    {
        "aten._scaled_dot_product_flash_attention_for_cpu",  # SDPA's CPU kernel; MPS runs its own
        "aten._scaled_dot_product_attention_math_for_mps",
        "aten._to_copy",
        "aten._unsafe_view",
        "aten.add",
        "aten.addmm",
        "aten.bmm",
        "aten.cat",
        "aten.clone",
        "aten.convolution",
        "aten.copy_",
        "aten.detach",
        "aten.div",
        "aten.exp",
        "aten.expand",
        "aten.gelu",
        "aten.grid_sampler_2d",
        "aten.index",
        "aten.lift_fresh",
        "aten.mm",
        "aten.mul",
        "aten.native_group_norm",
        "aten.native_layer_norm",
        "aten.permute",
        "aten.select",
        "aten.sigmoid",
        "aten.silu",
        "aten.silu_",
        "aten.slice",
        "aten.split",
        "aten.squeeze",
        "aten.stack",
        "aten.sub",
        "aten.t",
        "aten.transpose",
        "aten.unsqueeze",
        "aten.view",
    }
)


REPORT_HEADER = """# Ops on the inference path

Written by `python -m sidecar.triposr.op_audit --write docs/device-ops.md` from one job of the tiny
test model (preprocess, encode, dense and sparse extraction, colours) on the CPU, with the PyTorch the
README installs; `tests/test_device_audit.py` fails when it is out of date.

*device* ops run on the accelerator: each must be float32 or lower and have an MPS kernel. *cpu* ops
run on the CPU on purpose (`device.cpu_path()`): resampling that MPS lacks in older PyTorch releases,
and building grid points.

| path | op | dtypes |
| --- | --- | --- |
"""


@dataclass
class OpAudit:
    """Calls by (path, op, dtypes); path is "device" or "cpu"."""

    counts: Counter[tuple[str, str, tuple[str, ...]]] = field(default_factory=Counter)
    mps_fallbacks: Counter[str] = field(default_factory=Counter)

    def ops(self, path: str) -> set[str]:
        return {op for where, op, _ in self.counts if where == path}

    def float64_on_device(self) -> set[str]:
        return {op for where, op, dtypes in self.counts if where == "device" and "float64" in dtypes}

    def unsupported_on_mps(self) -> set[str]:
        return self.ops("device") - MPS_SUPPORTED

    def markdown(self) -> str:
        rows = [f"| {where} | `{op}` | {', '.join(dtypes)} |" for where, op, dtypes in sorted(self.counts)]
        return REPORT_HEADER + "\n".join(rows) + "\n"


class OpRecorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.audit = OpAudit()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        result = func(*args, **(kwargs or {}))
        tensors = [value for value in tree_leaves((args, kwargs, result)) if isinstance(value, torch.Tensor)]
        dtypes = tuple(sorted({str(tensor.dtype).removeprefix("torch.") for tensor in tensors}))
        name = str(func.overloadpacket)
        self.audit.counts["cpu" if in_cpu_path() else "device", name, dtypes] += 1
        if any(t.device.type == "mps" for t in tensors) and not _has_mps_kernel(func):
            self.audit.mps_fallbacks[name] += 1
        return result


def _has_mps_kernel(func: torch._ops.OpOverload) -> bool:
    name = func.name()
    return any(
        torch._C._dispatch_has_kernel_for_dispatch_key(name, key)
        for key in ("MPS", "CompositeExplicitAutograd", "CompositeImplicitAutograd")
    )


def audit_job(weights: str, image: Path) -> OpAudit:
    """Record one small job, image to coloured mesh, of the model at `weights` on the CPU.

    Both extraction paths run: the dense grid, and the bricks of the sparse path (told not to hand
    over to the dense grid, which the tiny model's lattice-like surface would make it do).
    """
    from .isosurface import sparse_isosurface
    from .loading import load_model
    from .model import DEFAULT_CHUNK_SIZE, DEFAULT_THRESHOLD
    from .preprocess import open_image

    model = load_model(weights, device="cpu")
    with OpRecorder() as recorder:
        scene_code = model.encode(model.preprocess(open_image(image)))[0]
        model.extract_mesh(scene_code, resolution=48, sparse=False)
        sparse_isosurface(
            model.field_query(scene_code), 48, model.radius, DEFAULT_THRESHOLD, DEFAULT_CHUNK_SIZE, 16,
            dense_share=1.0,
        )  # fmt: skip
    return recorder.audit


def main() -> None:
    parser = argparse.ArgumentParser(description="List the ops inference runs, by device path.")
    parser.add_argument("--weights", default="tests/fixtures/triposr/tiny")
    parser.add_argument("--image", type=Path, default=Path("tests/fixtures/triposr/tiny/input.png"))
    parser.add_argument("--write", type=Path, help="write the Markdown table to this file")
    args = parser.parse_args()
    report = audit_job(args.weights, args.image).markdown()
    if args.write:
        args.write.write_text(report)
    else:
        print(report)


if __name__ == "__main__":
    main()
