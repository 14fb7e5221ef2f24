"""Clean-up: drop the floating pieces a field leaves around an object, and smooth without shrinking."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from .surface import Surface

# Taubin's pair of steps: a shrinking one (lambda) and a slightly larger inflating one (mu), so noise is
# damped while the shape's low frequencies, and with them its volume, pass almost unchanged.
TAUBIN_LAMBDA = 0.5
TAUBIN_MU = -0.53


def drop_small_pieces(surface: Surface, min_piece: float) -> Surface:
    """Only the connected pieces whose area is at least `min_piece` times the largest piece's."""
    if len(surface.faces) == 0:
        return surface
    count, piece_of_vertex = connected_components(adjacency(surface), directed=False)
    if count == 1:
        return surface
    piece_of_face = piece_of_vertex[surface.faces[:, 0]]
    piece_area = np.bincount(piece_of_face, weights=face_areas(surface), minlength=count)
    kept = piece_area >= min_piece * piece_area.max()
    return restrict_to_faces(surface, surface.faces[kept[piece_of_face]])


def smooth(surface: Surface, iterations: int) -> Surface:
    """Taubin smoothing with uniform weights: each step moves a vertex toward (lambda) or away from (mu)
    the mean of its neighbours. Vertices move; colours and coordinates stay."""
    graph = adjacency(surface)
    degree = np.asarray(graph.sum(axis=1)).ravel()
    # a lone vertex is its own neighbourhood, so it stays put
    lone = sparse.diags((degree == 0).astype(np.float64))
    neighbour_mean = sparse.diags(1.0 / np.maximum(degree, 1)) @ graph + lone
    points = surface.vertices.astype(np.float64)
    for _ in range(iterations):
        for step in (TAUBIN_LAMBDA, TAUBIN_MU):
            points += step * (neighbour_mean @ points - points)
    return replace(surface, vertices=points.astype(np.float32))


def adjacency(surface: Surface) -> sparse.csr_matrix:
    """The symmetric 0/1 matrix of vertices joined by an edge of some face."""
    start = surface.faces.ravel()
    end = np.roll(surface.faces, -1, axis=1).ravel()
    rows, cols = np.concatenate([start, end]), np.concatenate([end, start])
    graph = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(surface.vertices),) * 2)
    graph.data[:] = 1.0  # an edge shared by two faces was summed twice
    return graph


def face_areas(surface: Surface) -> np.ndarray:
    corners = surface.vertices[surface.faces].astype(np.float64)
    edges = corners[:, 1:] - corners[:, :1]
    return 0.5 * np.linalg.norm(np.cross(edges[:, 0], edges[:, 1]), axis=1)


def restrict_to_faces(surface: Surface, faces: np.ndarray) -> Surface:
    """The surface made of `faces` only (indices into its vertices), without the vertices none of them use."""
    used, new_faces = np.unique(faces, return_inverse=True)
    return surface.subset(used, new_faces.reshape(faces.shape))
