"""Building the network and filling it from a checkpoint without a second copy of the weights."""

from __future__ import annotations

import torch

from .config import TripoSRConfig, load_config
from .device import backbone_dtype, resolve_precision, select_device
from .errors import ModelLoadError
from .model import TripoSR
from .weights import DEFAULT_WEIGHTS, locate_weights


def build_model(config: TripoSRConfig, device: str | torch.device = "meta") -> TripoSR:
    """The network with uninitialised (meta) or randomly initialised parameters."""
    with torch.device(device):
        return TripoSR(config).eval()


def load_model(
    weights: str = DEFAULT_WEIGHTS,
    device: str = "auto",
    revision: str | None = None,
    precision: str = "float32",
) -> TripoSR:
    """The model from a local folder or a hub repo id, in eval mode on the chosen device.

    `precision` bfloat16 or float16 runs the backbone in half precision where the device supports it;
    auto runs it in bfloat16 where the device computes that natively.
    """
    target = select_device(device)
    dtype = backbone_dtype(target, resolve_precision(target, precision))
    files = locate_weights(weights, revision)
    model = build_model(load_config(files.config, files.vit_config))
    try:
        state = torch.load(files.checkpoint, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises several types for damaged or foreign files
        raise ModelLoadError(
            f"The checkpoint {files.checkpoint} cannot be read ({exc}). It may be incomplete; "
            "download it again."
        ) from exc
    if not isinstance(state, dict):
        raise ModelLoadError(f"The checkpoint {files.checkpoint} does not hold a state dict.")
    expected = model.state_dict().keys()
    missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
    if missing or unexpected:
        raise ModelLoadError(
            f"The checkpoint {files.checkpoint} does not fit its config.yaml: "
            f"{len(missing)} missing tensor(s) {missing[:3]}, {len(unexpected)} unexpected "
            f"{unexpected[:3]}."
        )
    try:
        # assign=True adopts the loaded tensors instead of copying into freshly allocated ones.
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:  # shape mismatches
        raise ModelLoadError(f"The checkpoint {files.checkpoint} does not fit its config: {exc}") from exc
    model.use_backbone_dtype(dtype)
    return model.to(target)
