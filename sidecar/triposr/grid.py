"""The extraction grid and the field queried on it, a bounded number of points at a time.

The grid is the official one (`linspace(0, 1, res)` per axis, x slowest, scaled to the model's radius),
built chunk by chunk from flat indices so that no `res^3 x 3` coordinate tensor ever exists: memory
beyond the density volume itself stays bounded by the chunk size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .device import cpu_path
from .triplane import scale_range

# A field maps points [N, 3] (CPU, model frame) to activated density [N] and colour in 0..1 [N, 3].
FieldQuery = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@cpu_path()
def grid_axis(resolution: int, radius: float) -> torch.Tensor:
    """The coordinates along one axis of the extraction grid, in the model's frame."""
    return scale_range(torch.linspace(0.0, 1.0, resolution), (0.0, 1.0), (-radius, radius))


@cpu_path()
def grid_points(axis: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """The grid points with flat indices [start, stop) in C order, as [N, 3] (x, y, z)."""
    res = axis.shape[0]
    index = torch.arange(start, stop)
    return torch.stack([axis[index // (res * res)], axis[(index // res) % res], axis[index % res]], 1)


def query_in_chunks(
    query: FieldQuery, points: torch.Tensor, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Density [N] and colour [N, 3] at points [N, 3], a bounded number of points at a time."""
    densities, colors = [], []
    with torch.no_grad():
        for start in range(0, points.shape[0], chunk_size):
            density, color = query(points[start : start + chunk_size])
            densities.append(density.float().cpu())
            colors.append(color.float().cpu())
    if not densities:
        return torch.zeros(0), torch.zeros(0, 3)
    return torch.cat(densities), torch.cat(colors)


def density_grid(
    query: FieldQuery,
    resolution: int,
    radius: float,
    chunk_size: int,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Activated density on the `resolution`^3 grid, as float32 [x, y, z].

    `progress` gets the fraction done after each chunk; raising from it stops the evaluation.
    """
    axis = grid_axis(resolution, radius)
    total = resolution**3
    volume = np.empty(total, dtype=np.float32)
    with torch.no_grad():
        for start in range(0, total, chunk_size):
            stop = min(start + chunk_size, total)
            density, _ = query(grid_points(axis, start, stop))
            volume[start:stop] = density.float().cpu().numpy()
            if progress is not None:
                progress(stop / total)
    return volume.reshape(resolution, resolution, resolution)
