"""A full-size network with seeded random weights that still has a surface, for measuring without weights.

PyTorch's default initialisation gives a nearly constant density field, which has no isosurface. As the
tiny test fixture was made, two layers are rescaled after initialisation: the upsampler, so the scene
codes have unit spread, and the density output, so a chosen share of the volume lies inside the surface.
The surface that results fills the volume like a lattice; it is no object, but it costs what a surface
costs.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .config import TripoSRConfig
from .loading import build_model
from .model import DEFAULT_THRESHOLD, TripoSR

SAMPLE_POINTS = 65536
DENSITY_SPREAD = 2.0  # standard deviation of the raw density after rescaling


@torch.no_grad()
def random_model(
    config: TripoSRConfig, image: np.ndarray, seed: int = 0, inside_share: float = 0.35
) -> TripoSR:
    """A CPU model with seeded weights, calibrated on `image` (uint8 HxWx3, as `preprocess` gives)."""
    torch.manual_seed(seed)
    model = build_model(config, device="cpu")
    upsample = model.post_processor.upsample
    scene_code = model.encode(image)[0]
    spread = scene_code.std().item()
    # the upsampler is the last layer, so scaling it scales the scene codes by the same factor
    upsample.weight.mul_(1.0 / spread)
    upsample.bias.mul_(1.0 / spread)
    scene_code /= spread
    points = (
        torch.rand(SAMPLE_POINTS, 3, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    ) * model.radius
    raw, _ = model.field.raw(scene_code, points)
    scale = DENSITY_SPREAD / raw.std().item()
    # the raw density at which the activated density reaches the threshold
    surface_raw = math.log(DEFAULT_THRESHOLD) - model.config.renderer.density_bias
    shift = surface_raw - scale * torch.quantile(raw - raw.mean(), 1.0 - inside_share).item()
    output = model.decoder.layers[-1]
    output.weight[0].mul_(scale)
    output.bias[0] = (output.bias[0] - raw.mean()) * scale + shift
    return model
