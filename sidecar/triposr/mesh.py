"""Mesh extraction: the density field on a grid, its isosurface, colours, and the turn into glTF's frame.

The grid is the official one (`linspace(0, 1, res)` per axis, x slowest, scaled to the model's radius),
built chunk by chunk from flat indices so that no `res^3 x 3` coordinate tensor ever exists: memory
beyond the density volume itself stays bounded by the chunk size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from .device import cpu_path
from .triplane import scale_range

if TYPE_CHECKING:
    import trimesh

# A field maps points [N, 3] (CPU, model frame) to activated density [N] and colour in 0..1 [N, 3].
FieldQuery = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

# TripoSR's frame is z up with the input camera on +x, its image-right along +y. glTF is y up with
# the front facing +z, so (X, Y, Z)_gltf = (y, z, x): a proper rotation, which keeps the winding.
MODEL_TO_GLTF_AXES = [1, 2, 0]


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


def extract_mesh(
    query: FieldQuery,
    radius: float,
    resolution: int,
    threshold: float,
    chunk_size: int,
    progress: Callable[[float], None] | None = None,
    sparse: bool = True,
    coarse_resolution: int | None = None,
) -> trimesh.Trimesh:
    """The isosurface of a field, vertex-coloured, in glTF's frame (y up, front +z).

    `sparse` evaluates the field only near the surface (see `sparse.py`); the dense path evaluates
    every grid point and is the reference.
    """
    vertices, faces = find_surface(
        query, radius, resolution, threshold, chunk_size, progress, sparse, coarse_resolution
    )
    return coloured_mesh(query, vertices, faces, resolution, radius, chunk_size)


def find_surface(
    query: FieldQuery,
    radius: float,
    resolution: int,
    threshold: float,
    chunk_size: int,
    progress: Callable[[float], None] | None = None,
    sparse: bool = True,
    coarse_resolution: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Vertices in grid-index units and faces of the isosurface, by the sparse or the dense path.

    Faces wind counter-clockwise seen from outside (the side of lower density).
    """
    from .isosurface import DEFAULT_COARSE_RESOLUTION, dense_isosurface, sparse_isosurface

    if sparse:
        coarse = coarse_resolution or DEFAULT_COARSE_RESOLUTION
        return sparse_isosurface(query, resolution, radius, threshold, chunk_size, coarse, progress)
    return dense_isosurface(density_grid(query, resolution, radius, chunk_size, progress), threshold)


def coloured_mesh(
    query: FieldQuery,
    vertices: np.ndarray,
    faces: np.ndarray,
    resolution: int,
    radius: float,
    chunk_size: int,
) -> trimesh.Trimesh:
    """The mesh in the model's units and glTF's frame, coloured by the field at its vertices."""
    import trimesh

    with cpu_path():
        unit = torch.from_numpy(vertices) / (resolution - 1)
        points = scale_range(unit, (0.0, 1.0), (-radius, radius))
    _, colors = query_in_chunks(query, points, chunk_size)
    rgba = np.empty((len(points), 4), dtype=np.uint8)
    rgba[:, :3] = np.round(colors.numpy() * 255.0)
    rgba[:, 3] = 255
    return trimesh.Trimesh(points.numpy()[:, MODEL_TO_GLTF_AXES], faces, vertex_colors=rgba, process=False)
