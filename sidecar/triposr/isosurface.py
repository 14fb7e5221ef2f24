"""Isosurfaces by marching cubes, brick by brick: over a whole density grid, or only where the surface is.

The dense path evaluates the whole grid and marches it (in slabs when it is large): it is the reference.
The sparse path cuts the fine grid into cubic bricks that share their faces and evaluates only those the
surface passes through. A coarse grid, a subset of the fine grid's points, seeds the bricks holding a coarse
cell whose values come within a factor of the threshold (SEED_MARGIN): those the surface crosses, and those
where a part or a hole thinner than the coarse spacing may hide. The surface is then followed from brick
to brick: whenever a brick's face has points on both sides of the threshold, the neighbour across it is
queued. Memory and time follow the surface's area, not resolution³. Marching happens on the CPU (MPS has no
marching cubes), many bricks at once (`marching.py`).

The two paths give the same mesh: a brick holds exactly the fine grid's values either way, marching cubes
decides every cell from its eight corners, and a vertex is named by its grid edge. What the sparse path can
still miss is a piece of surface so thin that no coarse cell near it comes within the margin: measured on
a random lattice, the margin of 2 finds every piece that the crossing test alone misses
(`tests/test_sparse.py`); a finer `--coarse-resolution` is the remedy for anything smaller.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import torch

from .device import cpu_path
from .errors import EmptySurfaceError
from .grid import FieldQuery, density_grid, grid_axis, lattice_density
from .marching import Piece, join, march

DEFAULT_COARSE_RESOLUTION = 64
BRICK_CELLS = 16  # cells along a brick's edge: large enough that per-brick overhead stays small
BRICKS_PER_BATCH = 16  # bricks whose points go through the network together
# Above this share of bricks with surface, the sparse path's overhead (shared brick faces, batching)
# outweighs what it skips, and it hands over to the dense path if the volume is no larger than this.
DENSE_SHARE = 0.5
# A coarse cell whose values reach within this factor of the threshold is searched: density falls off
# exponentially (an exp of the network's output), so a thin part between coarse points still lifts them.
SEED_MARGIN = 2.0
DENSE_MAX_BYTES = 1 << 30
# Grid points marched at once on the dense path: what numbering the vertices takes stays near 300 MB.
DENSE_BLOCK_POINTS = 1 << 24

Brick = tuple[int, int, int]


def dense_isosurface(volume: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (grid-index units, axis order x y z) and faces of a fully evaluated grid."""
    resolution = volume.shape[0]
    # slabs sharing their boundary planes, so a large grid's vertex numbering stays within memory
    step = max(1, DENSE_BLOCK_POINTS // resolution**2 - 1)
    pieces = [
        march(volume[None, start : start + step + 1], np.array([[start, 0, 0]]), threshold, resolution)
        for start in range(0, resolution - 1, step)
    ]
    return _surface(pieces, _no_surface_message(volume.min(), volume.max(), threshold))


def sparse_isosurface(
    query: FieldQuery,
    resolution: int,
    radius: float,
    threshold: float,
    chunk_size: int,
    coarse_resolution: int = DEFAULT_COARSE_RESOLUTION,
    progress: Callable[[float], None] | None = None,
    dense_share: float = DENSE_SHARE,
    seed_margin: float = SEED_MARGIN,
) -> tuple[np.ndarray, np.ndarray]:
    """The same as `dense_isosurface` on the `resolution`^3 grid, evaluating only near the surface.

    When the coarse grid would be no coarser than the fine one, or finds surface in more than `dense_share`
    of the bricks (a lattice rather than an object), and the dense volume fits in DENSE_MAX_BYTES, the dense
    path is cheaper and is taken.
    """
    if marches_whole_grid(resolution, coarse_resolution):
        return dense_isosurface(density_grid(query, resolution, radius, chunk_size, progress), threshold)
    axis = grid_axis(resolution, radius)
    stride = coarse_stride(resolution, coarse_resolution)
    brick = max(stride, BRICK_CELLS)
    last = resolution - 1
    per_axis = -(-last // brick)
    pieces: list[Piece] = []

    queued = _seed_bricks(query, axis, stride, brick, threshold, chunk_size, seed_margin)
    if len(queued) > dense_share * per_axis**3 and resolution**3 * 4 <= DENSE_MAX_BYTES:
        return dense_isosurface(density_grid(query, resolution, radius, chunk_size, progress), threshold)
    pending = deque(sorted(queued))
    done, reported = 0, 0.0
    while pending:
        batch = [pending.popleft() for _ in range(min(BRICKS_PER_BATCH, len(pending)))]
        evaluated = _evaluate_bricks(query, axis, batch, brick, chunk_size)
        pieces += _march_bricks(batch, evaluated, brick, threshold, resolution)
        for origin, values in zip(batch, evaluated, strict=True):
            for neighbour in _neighbours_across_crossed_faces(origin, values, threshold, per_axis):
                if neighbour not in queued:
                    queued.add(neighbour)
                    pending.append(neighbour)
        done += len(batch)
        if progress is not None:
            # the queue grows as the surface is followed, so the share done can dip: report the best
            reported = max(reported, done / (done + len(pending)))
            progress(reported)
    message = (
        f"The model predicted no surface: the density never crosses the threshold {threshold:g} on this "
        "grid's coarse samples. The image may show no recognisable object; try another image or a cleaner "
        "cut-out."
    )
    return _surface(pieces, message)


def marches_whole_grid(resolution: int, coarse_resolution: int) -> bool:
    """Whether the sparse path evaluates the whole grid at once: when the coarse grid would be the fine one,
    seeding alone would evaluate it all (and the dense volume fits in DENSE_MAX_BYTES)."""
    return coarse_stride(resolution, coarse_resolution) == 1 and resolution**3 * 4 <= DENSE_MAX_BYTES


def coarse_stride(resolution: int, coarse_resolution: int) -> int:
    """The power-of-two step between coarse points, so about `coarse_resolution` of them span an axis."""
    cells = max(1, (resolution - 1) // max(1, coarse_resolution - 1))
    return 1 << (cells.bit_length() - 1)


def crosses(values: np.ndarray, threshold: float) -> bool:
    """Whether values lie on both sides of the threshold (a value on it counts for either side)."""
    low, high = values.min(), values.max()
    return bool(low <= threshold <= high and low < high)


def _surface(pieces: list[Piece], no_surface_message: str) -> tuple[np.ndarray, np.ndarray]:
    """The pieces joined, as float32 vertices in grid-index units and faces."""
    if not any(len(piece.faces) for piece in pieces):
        raise EmptySurfaceError(no_surface_message)
    vertices, faces = join(pieces)
    if any(piece.on_points for piece in pieces):
        return remove_degenerate_faces(vertices, faces)
    return vertices, faces


def _march_bricks(
    origins: list[Brick], values: list[np.ndarray], brick: int, threshold: float, resolution: int
) -> list[Piece]:
    """The surface in bricks that have some, marched together by shape (bricks at the grid's end are
    smaller)."""
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for index, brick_values in enumerate(values):
        if crosses(brick_values, threshold):
            by_shape.setdefault(brick_values.shape, []).append(index)
    return [
        march(
            np.stack([values[i] for i in indices]),
            np.array([origins[i] for i in indices]) * brick,
            threshold,
            resolution,
        )
        for indices in by_shape.values()
    ]


def remove_degenerate_faces(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge the vertices that coincide, drop the faces that collapse, drop the vertices left unused.

    Vertices coincide only on a grid point: where the surface passes through one (a value exactly at the
    threshold), or where a vertex lies within float32's rounding of it. Only those few are compared.
    """
    on_point = np.flatnonzero((vertices == np.floor(vertices)).all(axis=1))
    _, first, group = np.unique(vertices[on_point], axis=0, return_index=True, return_inverse=True)
    if len(first) == len(on_point):
        return vertices, faces
    representative = np.arange(len(vertices))
    representative[on_point] = on_point[first][group.reshape(-1)]
    faces = representative[faces]
    collapsed = (faces[:, 0] == faces[:, 1]) | (faces[:, 0] == faces[:, 2]) | (faces[:, 1] == faces[:, 2])
    faces = faces[~collapsed]
    used = np.zeros(len(vertices), dtype=bool)
    used[faces.reshape(-1)] = True
    renumbered = np.cumsum(used) - 1
    return vertices[used], renumbered[faces]


def _no_surface_message(low: float, high: float, threshold: float) -> str:
    return (
        f"The model predicted no surface: the density ranges from {low:.3g} to {high:.3g} and never "
        f"crosses the threshold {threshold:g}. The image may show no recognisable object; try another "
        "image or a cleaner cut-out."
    )


def _brick_range(origin: int, brick: int, last: int) -> slice:
    return slice(origin * brick, min((origin + 1) * brick, last) + 1)


def _seed_bricks(
    query: FieldQuery,
    axis: torch.Tensor,
    stride: int,
    brick: int,
    threshold: float,
    chunk_size: int,
    margin: float,
) -> set[Brick]:
    """Bricks holding a coarse cell whose values come within a factor `margin` of the threshold: crossed
    cells, and those where a part or a hole thinner than the coarse spacing may hide."""
    last = axis.shape[0] - 1
    index = np.unique(np.append(np.arange(0, last, stride), last))
    with cpu_path():
        coarse_axis = axis[torch.from_numpy(index)]
    values = lattice_density(query, coarse_axis, coarse_axis, coarse_axis, chunk_size)
    n = values.shape[0] - 1
    corners = np.stack(
        [values[i : n + i, j : n + j, k : n + k] for i in (0, 1) for j in (0, 1) for k in (0, 1)]
    )
    low, high = corners.min(0), corners.max(0)
    near = (low <= threshold * margin) & (threshold / margin <= high) & (low < high)
    cells = np.argwhere(near)
    return {(int(x), int(y), int(z)) for x, y, z in np.unique(index[cells] // brick, axis=0)}


def _evaluate_bricks(
    query: FieldQuery, axis: torch.Tensor, bricks: list[Brick], brick: int, chunk_size: int
) -> list[np.ndarray]:
    """The density at every fine grid point of each brick, its faces included."""
    last = axis.shape[0] - 1
    return [
        lattice_density(query, *(axis[_brick_range(o, brick, last)] for o in origin), chunk_size)
        for origin in bricks
    ]


def _neighbours_across_crossed_faces(
    origin: Brick, values: np.ndarray, threshold: float, per_axis: int
) -> list[Brick]:
    """Neighbour bricks that the surface enters: those across a face with points on both sides."""
    neighbours = []
    for dim in range(3):
        for side, step in ((0, -1), (-1, 1)):
            target = list(origin)
            target[dim] += step
            if 0 <= target[dim] < per_axis and crosses(np.take(values, side, axis=dim), threshold):
                neighbours.append((target[0], target[1], target[2]))
    return neighbours
