"""The extraction grid and the field queried on it, a bounded number of points at a time.

The grid is the official one (`linspace(0, 1, res)` per axis, x slowest, scaled to the model's radius),
built chunk by chunk from flat indices so that no `res^3 x 3` coordinate tensor ever exists: memory
beyond the density volume itself stays bounded by the chunk size.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

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
    return lattice_density(query, axis, axis, axis, chunk_size, progress)


def lattice_density(
    query: FieldQuery,
    xs: torch.Tensor,
    ys: torch.Tensor,
    zs: torch.Tensor,
    chunk_size: int,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Activated density at every point (xs[i], ys[j], zs[k]) of a lattice, as float32 [i, j, k]: boxes of
    at most `chunk_size` points (whole planes along x, or rows of one plane), through the field's own lattice
    evaluation where it has one (see `TriplaneField.lattice`)."""
    lattice = getattr(query, "lattice", None) or partial(_lattice_by_points, query)
    nx, ny, nz = len(xs), len(ys), len(zs)
    volume = np.empty((nx, ny, nz), dtype=np.float32)
    planes = max(1, chunk_size // (ny * nz))
    rows = ny if planes > 1 else max(1, chunk_size // nz)
    boxes = [(i, j) for i in range(0, nx, planes) for j in range(0, ny, rows)]
    with torch.no_grad():
        for done, (i, j) in enumerate(boxes, 1):
            box = lattice(xs[i : i + planes], ys[j : j + rows], zs)
            volume[i : i + planes, j : j + rows] = box.float().cpu().numpy()
            if progress is not None:
                progress(done / len(boxes))
    return volume


def _lattice_by_points(
    query: FieldQuery, xs: torch.Tensor, ys: torch.Tensor, zs: torch.Tensor
) -> torch.Tensor:
    """A field without a lattice evaluation of its own, asked point by point."""
    with cpu_path():
        points = torch.stack(torch.meshgrid(xs, ys, zs, indexing="ij"), -1).reshape(-1, 3)
    density, _ = query(points)
    return density.reshape(len(xs), len(ys), len(zs))
