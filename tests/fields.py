"""A density field whose surface and colours are known, to test extraction without a network."""

from __future__ import annotations

import numpy as np
import torch

RADIUS = 0.87
THRESHOLD = 25.0
# An ellipsoid off the centre toward the input camera (+x), to the image's right (+y) and up (+z),
# with a different semi-axis along each model axis so any axis swap shows.
CENTRE = np.array([0.3, 0.15, 0.2])
SEMI_AXES = np.array([0.2, 0.3, 0.4])


def ellipsoid_field(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Density 50 at the centre, 25 on the ellipsoid; colour a gradient reaching near-black."""
    offset = (points.double() - torch.from_numpy(CENTRE)) / torch.from_numpy(SEMI_AXES)
    density = 2 * THRESHOLD * torch.exp(-np.log(2.0) * (offset**2).sum(1))
    return density.float(), torch.from_numpy(expected_srgb(points.numpy())).float()


def expected_srgb(model_points: np.ndarray) -> np.ndarray:
    # 0..1 across the ellipsoid's bounding box, so the colours span from near-black to full.
    unit = (np.asarray(model_points, dtype=np.float64) - CENTRE + SEMI_AXES) / (2 * SEMI_AXES)
    color = np.stack([unit[:, 0], 1.0 - unit[:, 1], unit[:, 2] ** 3], axis=1)
    return np.clip(color, 0.0, 1.0)


def gltf_to_model(points: np.ndarray) -> np.ndarray:
    """glTF (X, Y, Z) = model (y, z, x)."""
    return np.asarray(points)[:, [2, 0, 1]]


def blender_to_model(points: np.ndarray) -> np.ndarray:
    """Blender (X, Y, Z) = model (y, -x, z): front (+x) toward -Y, image-right (+y) toward +X."""
    return np.stack([-points[:, 1], points[:, 0], points[:, 2]], axis=1)
