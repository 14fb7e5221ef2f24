"""Isosurfaces by marching cubes, brick by brick: over a whole density grid, or only where the surface is.

The fine grid is cut into cubic bricks that share their faces. Each brick that has values on both
sides of the threshold is marched on its own (on the CPU: MPS has no marching cubes), and the pieces
are joined, each vertex on a shared face kept once.

The dense path evaluates the whole grid first: it is the reference. The sparse path evaluates only
bricks the surface passes through. A coarse grid, a subset of the fine grid's points, finds the bricks
holding a coarse cell the surface crosses; the surface is then followed from brick to brick: whenever a
brick's face has points on both sides of the threshold, the surface goes on into the neighbour across
that face, which is queued. Memory and time follow the surface's area, not resolution³.

The two paths give the same mesh: a brick holds exactly the fine grid's values either way, and marching
cubes decides every cell from its eight corners. The one assumption is in the sparse path's seeding: a
separate piece of surface is found only if it cuts an edge of the coarse grid. A blob, or a hole, that
fits between coarse grid points without cutting an edge between them is missed; the coarse spacing,
`2 * radius / (coarse_resolution - 1)` in model units, is the smallest feature it is sure to see.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import torch

from .device import cpu_path
from .errors import EmptySurfaceError
from .grid import FieldQuery, density_grid, grid_axis, query_in_chunks

DEFAULT_COARSE_RESOLUTION = 64
BRICK_CELLS = 16  # cells along a brick's edge: large enough that per-brick overhead stays small
BRICKS_PER_BATCH = 16  # bricks whose points go through the network together
# Above this share of bricks with surface, the sparse path's overhead (shared brick faces, batching)
# outweighs what it skips, and it hands over to the dense path if the volume is no larger than this.
DENSE_SHARE = 0.5
DENSE_MAX_BYTES = 1 << 30

Brick = tuple[int, int, int]


def dense_isosurface(volume: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (grid-index units, axis order x y z) and faces of a fully evaluated grid."""
    last = volume.shape[0] - 1
    per_axis = -(-last // BRICK_CELLS)
    mesher = BrickMesher(threshold, BRICK_CELLS, volume.shape[0])
    for origin in np.ndindex(per_axis, per_axis, per_axis):
        mesher.add(origin, volume[tuple(_brick_range(o, BRICK_CELLS, last) for o in origin)])
    return mesher.join(_no_surface_message(volume.min(), volume.max(), threshold))


def sparse_isosurface(
    query: FieldQuery,
    resolution: int,
    radius: float,
    threshold: float,
    chunk_size: int,
    coarse_resolution: int = DEFAULT_COARSE_RESOLUTION,
    progress: Callable[[float], None] | None = None,
    dense_share: float = DENSE_SHARE,
) -> tuple[np.ndarray, np.ndarray]:
    """The same as `dense_isosurface` on the `resolution`^3 grid, evaluating only near the surface.

    When the coarse grid finds surface in more than `dense_share` of the bricks (a lattice rather than
    an object) and the dense volume fits in DENSE_MAX_BYTES, the dense path is cheaper and is taken.
    """
    axis = grid_axis(resolution, radius)
    stride = coarse_stride(resolution, coarse_resolution)
    brick = max(stride, BRICK_CELLS)
    last = resolution - 1
    per_axis = -(-last // brick)
    mesher = BrickMesher(threshold, brick, resolution)

    queued = _seed_bricks(query, axis, stride, brick, threshold, chunk_size)
    if len(queued) > dense_share * per_axis**3 and resolution**3 * 4 <= DENSE_MAX_BYTES:
        return dense_isosurface(density_grid(query, resolution, radius, chunk_size, progress), threshold)
    pending = deque(sorted(queued))
    done, reported = 0, 0.0
    while pending:
        batch = [pending.popleft() for _ in range(min(BRICKS_PER_BATCH, len(pending)))]
        for origin, values in zip(
            batch, _evaluate_bricks(query, axis, batch, brick, chunk_size), strict=True
        ):
            mesher.add(origin, values)
            for neighbour in _neighbours_across_crossed_faces(origin, values, threshold, per_axis):
                if neighbour not in queued:
                    queued.add(neighbour)
                    pending.append(neighbour)
        done += len(batch)
        if progress is not None:
            # the queue grows as the surface is followed, so the share done can dip: report the best
            reported = max(reported, done / (done + len(pending)))
            progress(reported)
    return mesher.join(
        f"The model predicted no surface: the density never crosses the threshold {threshold:g} on "
        f"this grid's coarse samples. The image may show no recognisable object; try another image "
        "or a cleaner cut-out."
    )


def coarse_stride(resolution: int, coarse_resolution: int) -> int:
    """The power-of-two step between coarse points, so about `coarse_resolution` of them span an axis."""
    cells = max(1, (resolution - 1) // max(1, coarse_resolution - 1))
    return 1 << (cells.bit_length() - 1)


def crosses(values: np.ndarray, threshold: float) -> bool:
    """Whether values lie on both sides of the threshold (a value on it counts for either side)."""
    low, high = values.min(), values.max()
    return bool(low <= threshold <= high and low < high)


class BrickMesher:
    """Marches bricks one by one and joins their pieces into one mesh."""

    def __init__(self, threshold: float, brick: int, resolution: int):
        self.threshold = threshold
        self.brick = brick
        self.resolution = resolution
        self.pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, origin: Brick, values: np.ndarray) -> None:
        """March one brick's values (its points from `origin * brick`, faces included)."""
        if not crosses(values, self.threshold):
            return
        from skimage.measure import marching_cubes

        # Degenerate faces are removed once the pieces are joined, in global coordinates.
        local, faces, _, _ = marching_cubes(
            values, level=self.threshold, gradient_direction="ascent", allow_degenerate=True
        )
        offset = np.array(origin) * self.brick
        self.pieces.append(
            (local.astype(np.float64) + offset, faces.astype(np.int64), self._keys(local, offset))
        )

    def _keys(self, local: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """A name for each vertex, the same in every brick that makes it.

        Most vertices lie on a grid edge: two coordinates whole, the third not. Bricks share their
        faces, so an edge on a face is marched twice, each time with the same local values along it;
        the edge names the vertex. Lewiner's method also puts vertices inside a cell (more than one
        coordinate fractional): a cell belongs to one brick, so those are never shared; -1 marks them.
        """
        whole = np.floor(local)
        fractional = local != whole
        edge_axis = np.where(fractional.any(1), fractional.argmax(1), 3)
        start = whole.astype(np.int64) + offset
        size = self.resolution
        keys = ((start[:, 0] * size + start[:, 1]) * size + start[:, 2]) * 4 + edge_axis
        keys[fractional.sum(1) > 1] = -1
        return keys

    def join(self, no_surface_message: str) -> tuple[np.ndarray, np.ndarray]:
        """Vertices (float32, grid-index units) and faces of the whole surface."""
        if not self.pieces:
            raise EmptySurfaceError(no_surface_message)
        vertices = np.concatenate([piece[0] for piece in self.pieces])
        keys = np.concatenate([piece[2] for piece in self.pieces])
        in_cells = keys < 0
        keys[in_cells] = -1 - np.arange(in_cells.sum())  # distinct, so never merged
        starts = np.cumsum([0] + [len(piece[0]) for piece in self.pieces[:-1]])
        faces = np.concatenate([piece[1] + start for piece, start in zip(self.pieces, starts, strict=True)])
        _, first, merged = np.unique(keys, return_index=True, return_inverse=True)
        return remove_degenerate_faces(vertices[first].astype(np.float32), merged[faces])


def remove_degenerate_faces(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge the vertices that coincide within a face, drop the faces that collapse, drop unused vertices.

    Vertices coincide when the surface passes through a grid point (or within float32 rounding of it).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    corners = vertices[faces]  # [F, 3 corners, 3 coordinates]
    pairs = [(a, b) for a, b in ((0, 1), (0, 2), (1, 2))]
    same = [np.all(corners[:, a] == corners[:, b], axis=1) for a, b in pairs]
    degenerate = np.logical_or.reduce(same)
    if degenerate.any():
        first = np.concatenate([faces[flags, a] for flags, (a, _) in zip(same, pairs, strict=True)])
        second = np.concatenate([faces[flags, b] for flags, (_, b) in zip(same, pairs, strict=True)])
        graph = coo_matrix((np.ones(len(first)), (first, second)), shape=(len(vertices),) * 2)
        _, group = connected_components(graph, directed=False)
        # each vertex stands for its group's lowest-numbered member
        representative = np.full(group.max() + 1, len(vertices))
        np.minimum.at(representative, group, np.arange(len(vertices)))
        faces = representative[group][faces[~degenerate]]
    used, faces = np.unique(faces, return_inverse=True)
    return vertices[used], faces.reshape(-1, 3)


def _no_surface_message(low: float, high: float, threshold: float) -> str:
    return (
        f"The model predicted no surface: the density ranges from {low:.3g} to {high:.3g} and never "
        f"crosses the threshold {threshold:g}. The image may show no recognisable object; try another "
        "image or a cleaner cut-out."
    )


def _brick_range(origin: int, brick: int, last: int) -> slice:
    return slice(origin * brick, min((origin + 1) * brick, last) + 1)


def _seed_bricks(
    query: FieldQuery, axis: torch.Tensor, stride: int, brick: int, threshold: float, chunk_size: int
) -> set[Brick]:
    """Bricks holding a coarse cell with corners on both sides of the threshold."""
    last = axis.shape[0] - 1
    index = np.unique(np.append(np.arange(0, last, stride), last))
    with cpu_path():
        coarse_axis = axis[torch.from_numpy(index)]
        grid = torch.stack(torch.meshgrid(coarse_axis, coarse_axis, coarse_axis, indexing="ij"), -1)
    density, _ = query_in_chunks(query, grid.reshape(-1, 3), chunk_size)
    values = density.numpy().reshape(grid.shape[:3])
    n = values.shape[0] - 1
    corners = np.stack(
        [values[i : n + i, j : n + j, k : n + k] for i in (0, 1) for j in (0, 1) for k in (0, 1)]
    )
    low, high = corners.min(0), corners.max(0)
    crossed = (low <= threshold) & (threshold <= high) & (low < high)
    cells = np.argwhere(crossed)
    return {(int(x), int(y), int(z)) for x, y, z in np.unique(index[cells] // brick, axis=0)}


def _evaluate_bricks(
    query: FieldQuery, axis: torch.Tensor, bricks: list[Brick], brick: int, chunk_size: int
) -> list[np.ndarray]:
    """The density at every fine grid point of each brick, its faces included."""
    last = axis.shape[0] - 1
    grids = []
    with cpu_path():
        for origin in bricks:
            x, y, z = (axis[_brick_range(o, brick, last)] for o in origin)
            grids.append(torch.stack(torch.meshgrid(x, y, z, indexing="ij"), -1))
        points = torch.cat([grid.reshape(-1, 3) for grid in grids])
    density, _ = query_in_chunks(query, points, chunk_size)
    sizes = [grid.shape[0] * grid.shape[1] * grid.shape[2] for grid in grids]
    return [
        part.reshape(grid.shape[:3])
        for part, grid in zip(np.split(density.numpy(), np.cumsum(sizes)[:-1]), grids, strict=True)
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
