"""Colours of a coloured mesh at any point near it: how a simplified cloud model keeps its original's look.

Each point takes the colour of the closest point on the original surface: vertex colours interpolated there,
or the texture sampled bilinearly at the texture coordinates interpolated there.
"""

from __future__ import annotations

from functools import cache, partial

import numpy as np
from scipy.spatial import cKDTree

from .cleanup import face_areas
from .colour import srgb_to_linear
from .surface import ColourSource, Surface

# Triangles whose centroids are nearest a point: the closest triangle is among them but for about one point
# in a thousand, and then the one found is a neighbour a hair farther away.
CANDIDATES = 8
# A triangle larger than PIECE_AREA typical (median) ones is searched as pieces no larger, up to MAX_SPLIT^2.
PIECE_AREA = 4.0
MAX_SPLIT = 8
POINTS_PER_BATCH = 32_768  # keeps the [points, candidates, 3] temporaries around 10 MB each
SRGB_BYTE_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)


def mesh_colour_source(surface: Surface) -> ColourSource:
    """Linear colours of `surface` (vertex colours, or its texture) at the points closest to those asked."""
    if surface.colours is None and not surface.textured:
        raise ValueError("a mesh colour source needs a surface with vertex colours or a texture")
    # built on first use: a cloud model that keeps its own colours never asks
    closest = cache(partial(ClosestPoints, surface))

    def colour(points: np.ndarray) -> np.ndarray:
        faces, weights = closest()(points)
        if surface.textured:
            return sample_texture(surface.texture, interpolate(surface.uv, faces, weights))
        return interpolate(surface.colours, faces, weights).astype(np.float32)

    return colour


class ClosestPoints:
    """For points in space, the closest points on a surface: a triangle each, and barycentric weights there.

    Candidate triangles come from a k-d tree of their centroids (a large triangle's cut in pieces); the exact
    closest point on each candidate follows Ericson, Real-Time Collision Detection, 5.1.5, for all at once.
    """

    def __init__(self, surface: Surface, candidates: int = CANDIDATES):
        # a triangle without area has no colour of its own, and no closest point of a well-defined weight
        areas = face_areas(surface)
        self.faces = surface.faces[areas > 0]
        corners = surface.vertices.astype(np.float64)[self.faces]
        a, ab, ac = corners[:, 0], corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
        dots = np.stack([(ab * ab).sum(1), (ab * ac).sum(1), (ac * ac).sum(1)], axis=1)
        # what the closest-point test needs of a triangle, side by side: one gather per candidate
        self.triangles = np.concatenate([a, ab, ac, dots], axis=1)
        self.sample_face, samples = _samples(corners, areas[areas > 0])
        self.tree = cKDTree(samples)
        self.candidates = min(candidates, len(samples))

    def __call__(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vertex indices of the closest triangle [N, 3] and the closest point's weights in it [N, 3]."""
        points = np.asarray(points, dtype=np.float64)
        faces = np.empty((len(points), 3), dtype=np.int64)
        weights = np.empty((len(points), 3), dtype=np.float64)
        for start in range(0, len(points), POINTS_PER_BATCH):
            batch = slice(start, start + POINTS_PER_BATCH)
            faces[batch], weights[batch] = self._closest(points[batch])
        return faces, weights

    def _closest(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, nearest = self.tree.query(points, k=self.candidates, workers=-1)
        candidate = self.sample_face[nearest.reshape(len(points), -1)]
        triangle = self.triangles[candidate]
        offset, ab, ac = points[:, None] - triangle[..., 0:3], triangle[..., 3:6], triangle[..., 6:9]
        d1, d2 = np.einsum("nkc,nkc->nk", ab, offset), np.einsum("nkc,nkc->nk", ac, offset)
        v, w = _closest_on_triangle(d1, d2, triangle[..., 9], triangle[..., 10], triangle[..., 11])
        miss = offset - v[..., None] * ab - w[..., None] * ac
        best = np.einsum("nkc,nkc->nk", miss, miss).argmin(axis=1)[:, None]
        v, w = np.take_along_axis(v, best, 1)[:, 0], np.take_along_axis(w, best, 1)[:, 0]
        return self.faces[np.take_along_axis(candidate, best, 1)[:, 0]], np.stack([1 - v - w, v, w], axis=1)


def _samples(corners: np.ndarray, areas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points that stand for the triangles [F, 3, 3] in the search, and the triangle of each: a triangle's
    centroid, or for one larger than PIECE_AREA typical ones, the centroids of the n^2 pieces (up to
    MAX_SPLIT^2) that make it no larger, so a point near its edge still finds it among the nearest samples
    rather than only its small neighbours."""
    piece = PIECE_AREA * np.median(areas)
    split = np.clip(np.ceil(np.sqrt(areas / piece)), 1, MAX_SPLIT).astype(np.int64)
    faces, points = [], []
    for n in np.unique(split):
        group = np.flatnonzero(split == n)
        weights = _piece_centroids(n)
        faces.append(np.repeat(group, len(weights)))
        points.append(np.einsum("pk,fkc->fpc", weights, corners[group]).reshape(-1, 3))
    return np.concatenate(faces), np.concatenate(points)


def _piece_centroids(n: int) -> np.ndarray:
    """Barycentric weights [n^2, 3] of the centroids of the n^2 triangles a triangle's edges cut in n make."""
    i, j = (index.ravel() for index in np.indices((n, n)))
    upward = np.stack([i + 1 / 3, j + 1 / 3], axis=1)[i + j <= n - 1]
    downward = np.stack([i + 2 / 3, j + 2 / 3], axis=1)[i + j <= n - 2]
    second_third = np.concatenate([upward, downward]) / n
    return np.concatenate([1 - second_third.sum(axis=1, keepdims=True), second_third], axis=1)


def _closest_on_triangle(
    d1: np.ndarray, d2: np.ndarray, ab_ab: np.ndarray, ab_ac: np.ndarray, ac_ac: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weights (v, w) of corners b and c of the point of triangle abc closest to p, from d1 = ab.ap and
    d2 = ac.ap and the edges' dot products: the Voronoi region of p decides, vertex, edge or face."""
    d3, d4 = d1 - ab_ab, d2 - ab_ac  # ab.bp, ac.bp
    d5, d6 = d1 - ab_ac, d2 - ac_ac  # ab.cp, ac.cp
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    # every denominator is a squared length or area, positive on a triangle with area
    on_ab = d1 / (d1 - d3)
    on_ac = d2 / (d2 - d6)
    on_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
    inside = va + vb + vc
    regions = [
        (d1 <= 0) & (d2 <= 0),  # at a
        (d3 >= 0) & (d4 <= d3),  # at b
        (vc <= 0) & (d1 >= 0) & (d3 <= 0),  # on edge ab
        (d6 >= 0) & (d5 <= d6),  # at c
        (vb <= 0) & (d2 >= 0) & (d6 <= 0),  # on edge ac
        (va <= 0) & (d4 >= d3) & (d5 >= d6),  # on edge bc
    ]
    zero, one = np.zeros_like(d1), np.ones_like(d1)
    v = np.select(regions, [zero, one, on_ab, zero, zero, 1 - on_bc], vb / inside)
    w = np.select(regions, [zero, zero, zero, one, on_ac, on_bc], vc / inside)
    return v, w


def interpolate(values: np.ndarray, faces: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-vertex values [V, C] at points given as triangles [N, 3] and barycentric weights [N, 3]."""
    return np.einsum("nk,nkc->nc", weights, values[faces].astype(np.float64))


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Linear colours [N, 3] of an sRGB texture [H, W, 3] at texture coordinates in glTF's convention,
    filtered bilinearly in linear light (as a GPU samples an sRGB texture), repeating beyond 0..1 (glTF's
    default sampler)."""
    height, width = texture.shape[:2]
    x, y = uv[:, 0] * width - 0.5, uv[:, 1] * height - 0.5  # texel centres on whole numbers
    left, top = np.floor(x), np.floor(y)
    across, down = (x - left)[:, None], (y - top)[:, None]
    columns = np.stack([left, left + 1]).astype(np.int64) % width
    rows = np.stack([top, top + 1]).astype(np.int64) % height

    def texel(row: int, column: int) -> np.ndarray:
        return SRGB_BYTE_TO_LINEAR[texture[rows[row], columns[column], :3]]

    upper = texel(0, 0) * (1 - across) + texel(0, 1) * across
    lower = texel(1, 0) * (1 - across) + texel(1, 1) * across
    return (upper * (1 - down) + lower * down).astype(np.float32)
