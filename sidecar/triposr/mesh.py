"""The isosurface of a field as a mesh: found by the sparse or the dense path, in the model's units, turned
into glTF's frame, and coloured by the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from .device import cpu_path
from .grid import FieldQuery, density_grid, query_in_chunks
from .isosurface import DEFAULT_COARSE_RESOLUTION, dense_isosurface, sparse_isosurface
from .triplane import scale_range

if TYPE_CHECKING:
    import trimesh

# TripoSR's frame is z up with the input camera on +x, its image-right along +y. glTF is y up with
# the front facing +z, so (X, Y, Z)_gltf = (y, z, x): a proper rotation, which keeps the winding.
MODEL_TO_GLTF_AXES = [1, 2, 0]
GLTF_TO_MODEL_AXES = [2, 0, 1]


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
    """Vertices (glTF's frame, model units, float32) and faces of the isosurface.

    Faces wind counter-clockwise seen from outside (the side of lower density). `sparse` evaluates the
    field only near the surface (see `isosurface.py`); the dense path evaluates every grid point and is
    the reference.
    """
    if sparse:
        coarse = coarse_resolution or DEFAULT_COARSE_RESOLUTION
        grid_vertices, faces = sparse_isosurface(
            query, resolution, radius, threshold, chunk_size, coarse, progress
        )
    else:
        volume = density_grid(query, resolution, radius, chunk_size, progress)
        grid_vertices, faces = dense_isosurface(volume, threshold)
    return grid_to_gltf(grid_vertices, resolution, radius), faces


def grid_to_gltf(grid_vertices: np.ndarray, resolution: int, radius: float) -> np.ndarray:
    """Vertices in grid units (float32) as points in glTF's frame, model units."""
    with cpu_path():
        points = scale_range(
            torch.from_numpy(grid_vertices) / (resolution - 1), (0.0, 1.0), (-radius, radius)
        )
    return points.numpy()[:, MODEL_TO_GLTF_AXES]


def field_colours(query: FieldQuery, points: np.ndarray, chunk_size: int) -> np.ndarray:
    """The field's colour (sRGB, 0..1, float32 [N, 3]) at points [N, 3] in glTF's frame."""
    model_points = torch.from_numpy(np.ascontiguousarray(points[:, GLTF_TO_MODEL_AXES], dtype=np.float32))
    _, colours = query_in_chunks(query, model_points, chunk_size)
    return colours.numpy()


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
    """The isosurface of a field in glTF's frame, its vertices coloured by the field (sRGB bytes)."""
    import trimesh

    vertices, faces = find_surface(
        query, radius, resolution, threshold, chunk_size, progress, sparse, coarse_resolution
    )
    rgba = np.full((len(vertices), 4), 255, dtype=np.uint8)
    rgba[:, :3] = np.round(field_colours(query, vertices, chunk_size) * 255.0)
    return trimesh.Trimesh(vertices, faces, vertex_colors=rgba, process=False)
