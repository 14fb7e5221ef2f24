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

from .errors import EmptySurfaceError
from .triplane import scale_range

if TYPE_CHECKING:
    import trimesh

# A field maps points [N, 3] (CPU, model frame) to activated density [N] and colour in 0..1 [N, 3].
FieldQuery = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

# TripoSR's frame is z up with the input camera on +x, its image-right along +y. glTF is y up with
# the front facing +z, so (X, Y, Z)_gltf = (y, z, x): a proper rotation, which keeps the winding.
MODEL_TO_GLTF_AXES = [1, 2, 0]


def grid_axis(resolution: int, radius: float) -> torch.Tensor:
    """The coordinates along one axis of the extraction grid, in the model's frame."""
    return scale_range(torch.linspace(0.0, 1.0, resolution), (0.0, 1.0), (-radius, radius))


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


def isosurface(volume: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes on the CPU: vertices in grid-index units (axis order x, y, z) and faces.

    Faces are wound counter-clockwise seen from outside, the side of lower density.
    """
    from skimage.measure import marching_cubes

    if not volume.min() < threshold < volume.max():
        raise EmptySurfaceError(
            f"The model predicted no surface: the density ranges from {volume.min():.3g} to "
            f"{volume.max():.3g} and never crosses the threshold {threshold:g}. The image may show "
            "no recognisable object; try another image or a cleaner cut-out."
        )
    # On a field that is higher inside, skimage's default winding faces inward; "ascent" turns it.
    vertices, faces, _, _ = marching_cubes(
        volume, level=threshold, gradient_direction="ascent", allow_degenerate=False
    )
    if len(faces) == 0:
        raise EmptySurfaceError("The model predicted no surface at this resolution.")
    return vertices.astype(np.float32), faces.astype(np.int64)


def extract_mesh(
    query: FieldQuery,
    radius: float,
    resolution: int,
    threshold: float,
    chunk_size: int,
    progress: Callable[[float], None] | None = None,
) -> trimesh.Trimesh:
    """The isosurface of a field, vertex-coloured, in glTF's frame (y up, front +z)."""
    volume = density_grid(query, resolution, radius, chunk_size, progress)
    return surface_mesh(query, volume, radius, threshold, chunk_size)


def surface_mesh(
    query: FieldQuery, volume: np.ndarray, radius: float, threshold: float, chunk_size: int
) -> trimesh.Trimesh:
    """Marching cubes on a density grid, colours queried at the vertices, turned into glTF's frame."""
    import trimesh

    vertices, faces = isosurface(volume, threshold)
    unit = torch.from_numpy(vertices) / (volume.shape[0] - 1)
    points = scale_range(unit, (0.0, 1.0), (-radius, radius))
    _, colors = query_in_chunks(query, points, chunk_size)
    rgba = np.empty((len(points), 4), dtype=np.uint8)
    rgba[:, :3] = np.round(colors.numpy() * 255.0)
    rgba[:, 3] = 255
    return trimesh.Trimesh(points.numpy()[:, MODEL_TO_GLTF_AXES], faces, vertex_colors=rgba, process=False)
