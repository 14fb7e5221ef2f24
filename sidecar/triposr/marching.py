"""Marching cubes with the classic table, vectorised over whole blocks of the grid (numpy, on the CPU).

A block is a stack of same-shaped boxes of grid values with their places in the grid. Every cell is decided by
its eight corners alone and every vertex lies on a grid edge, so a vertex is named by its edge (a key), and
blocks marched apart join into exactly the mesh of the whole grid: bricks of the sparse path, slabs of a large
dense grid, or the whole grid at once.

The official code calls torchmcubes on the density grid [x, y, z]; the cell it builds is Bourke's with
Bourke's axes (x, y, z) along our array axes (2, 0, 1). That is the geometry here, so the triangles are the
official ones. Vertices come out in grid-index units along the array axes, faces wound counter-clockwise
seen from the side of lower values (outside, for a density).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .mc_table import EDGE_CORNERS, TRIANGLES

# Bourke's corner k as an offset along our array axes (0, 1, 2) = Bourke's (y, z, x). In this geometry the
# table's triangles, as listed, face the corners below the level.
CORNERS = np.array([(0, 0, 0), (0, 0, 1), (1, 0, 1), (1, 0, 0), (0, 1, 0), (0, 1, 1), (1, 1, 1), (1, 1, 0)])
EDGE_START = np.array([np.minimum(CORNERS[a], CORNERS[b]) for a, b in EDGE_CORNERS])
EDGE_AXIS = np.array([int(np.argmax(CORNERS[a] != CORNERS[b])) for a, b in EDGE_CORNERS])
TRIANGLE_COUNT = np.array([len(case) // 3 for case in TRIANGLES])
TRIANGLE_EDGES = np.zeros((256, 5, 3), dtype=np.int64)
for _case, _edges in enumerate(TRIANGLES):
    TRIANGLE_EDGES[_case, : len(_edges) // 3] = np.array([int(e, 16) for e in _edges]).reshape(-1, 3)


@dataclass(frozen=True)
class Piece:
    """What one block makes: each vertex's key (its grid edge), position (grid units) and the faces."""

    keys: np.ndarray | None  # int64 [V]; None for the whole grid at once, which joins with nothing
    vertices: np.ndarray  # float32 [V, 3]
    faces: np.ndarray  # int32 [F, 3]
    boxes: int  # boxes sharing a face each make the vertices on it
    on_points: bool  # some vertex lies on a grid point, where vertices of other edges may coincide


def march(values: np.ndarray, origins: np.ndarray, level: float, resolution: int) -> Piece:
    """The isosurface at `level` of boxes `values` [B, n0, n1, n2], box b starting at grid point `origins[b]`
    of a `resolution`^3 grid. Values below the level are outside."""
    _boxes, n0, n1, n2 = values.shape
    below = values < level
    # each cell's case, stored at its lowest point so that a cell and its point share one flat index
    case = np.zeros(below.shape, dtype=np.uint8)
    cells = case[:, :-1, :-1, :-1]
    for bit, (d0, d1, d2) in enumerate(CORNERS):
        cells |= below[:, d0 : d0 + n0 - 1, d1 : d1 + n1 - 1, d2 : d2 + n2 - 1].view(np.uint8) << bit
    cells[cells == 255] = 0
    active = np.flatnonzero(case).astype(np.int32)
    cases = case.reshape(-1)[active]
    del case, cells

    # every crossed grid edge is a vertex, numbered in `vertex_of` by the edge's lower point, then its axis:
    # the grid's own order, so a face's corners (and the next face's) lie close together in every array made
    # from the mesh, which keeps later gathers (normals, colours) in cache
    points = below.size
    strides = np.array([n1 * n2, n2, 1])
    crossed = np.zeros((*below.shape, 3), dtype=bool)
    for axis in range(3):
        lower, upper = [slice(None)] * 4, [slice(None)] * 4
        lower[axis + 1], upper[axis + 1] = slice(0, -1), slice(1, None)
        crossed[(*lower, axis)] = below[tuple(lower)] != below[tuple(upper)]
    edges = np.flatnonzero(crossed)
    del crossed
    vertex_of = np.empty(3 * points, dtype=np.int32)  # written, and read, only at crossed edges
    vertex_of[edges] = np.arange(len(edges), dtype=np.int32)
    start, axis = np.divmod(edges, 3)
    box, i0, i1, i2 = np.unravel_index(start, below.shape)
    point = np.stack([i0, i1, i2], axis=1) + (origins[0] if len(origins) == 1 else origins[box])
    flat_values = values.reshape(-1)
    low, high = flat_values[start], flat_values[start + strides[axis]]
    vertices = point.astype(np.float32)
    rows = np.arange(len(edges))
    vertices[rows, axis] += (np.float32(level) - low) / (high - low)
    # a vertex on a grid point (at the level, or within float32's rounding of it) may coincide with others
    along = vertices[rows, axis]
    on_points = bool((along == np.floor(along)).any())
    whole_grid = len(origins) == 1 and values.shape[1:] == (resolution,) * 3
    keys = (
        None
        if whole_grid
        else ((point[:, 0] * resolution + point[:, 1]) * resolution + point[:, 2]) * 3 + axis
    )

    # the table's triangles of each active cell, slot by slot: where each corner's vertex is in `vertex_of`
    corner_offset = (EDGE_START @ strides * 3 + EDGE_AXIS)[TRIANGLE_EDGES].astype(np.int32)
    first_edge = active * 3
    per_cell = TRIANGLE_COUNT[cases]
    faces = []
    for slot in range(TRIANGLE_EDGES.shape[1]):
        having = np.flatnonzero(per_cell > slot)
        faces.append(vertex_of[first_edge[having, None] + corner_offset[cases[having], slot]])
    return Piece(keys, vertices, np.concatenate(faces), len(values), on_points)


def join(pieces: list[Piece]) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and faces of the pieces as one mesh, each vertex on a shared edge kept once."""
    if len(pieces) == 1 and pieces[0].boxes == 1:
        return pieces[0].vertices, pieces[0].faces
    keys = np.concatenate([piece.keys for piece in pieces])
    vertices = np.concatenate([piece.vertices for piece in pieces])
    starts = np.cumsum([0] + [len(piece.vertices) for piece in pieces[:-1]])
    faces = np.concatenate([piece.faces + start for piece, start in zip(pieces, starts, strict=True)])
    _, first, merged = np.unique(keys, return_index=True, return_inverse=True)
    return vertices[first], merged.reshape(-1)[faces]
