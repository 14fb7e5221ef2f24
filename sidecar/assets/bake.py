"""The bake: a colour for every texel of a UV atlas, from a colour source, with gutters around the charts.

Rasterising happens in texture space with numpy alone (no OpenGL, no window), so it runs headless anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .colour import linear_to_srgb
from .surface import ColourSource, Surface
from .unwrap import GUTTER, Unwrapped

TEXELS_PER_CHUNK = 1 << 20  # texels handled at once: under 100 MB of temporaries
POINTS_PER_QUERY = 262_144  # points handed to the colour source at once
# A texel centre this far outside a triangle (in barycentric weight) still counts as inside, so centres
# exactly on an edge two triangles share are not lost to rounding in both.
INSIDE_TOLERANCE = 1e-6
GUTTER_TEXELS = 2 * GUTTER  # as far as the charts leave room for, so the low mip levels stay clean too


@dataclass(frozen=True)
class Raster:
    """The texels whose centre lies in a triangle, each with that triangle and the centre's barycentric
    weights in it; a centre that two triangles share belongs to one."""

    size: int
    texels: np.ndarray  # int32 [N], row * size + column, ascending
    faces: np.ndarray  # int32 [N]
    weights: np.ndarray  # float32 [N, 3]

    def mask(self) -> np.ndarray:
        covered = np.zeros(self.size * self.size, dtype=bool)
        covered[self.texels] = True
        return covered.reshape(self.size, self.size)


def bake(
    unwrapped: Unwrapped,
    size: int,
    source: ColourSource,
    progress: Callable[[float], None] | None = None,
) -> Surface:
    """The unwrapped surface with a `size`^2 sRGB texture of `source`'s colours; `progress` hears the
    fraction of texels coloured after each batch of points."""
    surface = unwrapped.surface
    raster = rasterise(unwrapped.uv, surface.faces, size)
    image = np.zeros((size * size, 3), dtype=np.float32)
    for start in range(0, len(raster.texels), POINTS_PER_QUERY):
        batch = slice(start, start + POINTS_PER_QUERY)
        corners = surface.vertices[surface.faces[raster.faces[batch]]]
        points = np.einsum("nk,nkc->nc", raster.weights[batch], corners)
        image[raster.texels[batch]] = linear_to_srgb(source(points))
        if progress is not None:
            progress(min(1.0, (start + POINTS_PER_QUERY) / len(raster.texels)))
    covered = raster.mask()
    del raster  # a 4096^2 bake's arrays are hundreds of MB: only what is still needed stays
    image = image.reshape(size, size, 3)
    _fill_gutter(image, covered, GUTTER_TEXELS)
    image *= 255
    texture = np.round(image, out=image).astype(np.uint8)
    return replace(surface, colours=None, uv=unwrapped.uv, texture=texture)


def rasterise(uv: np.ndarray, faces: np.ndarray, size: int) -> Raster:
    """Which triangle covers each texel centre ((column + 0.5) / size, (row + 0.5) / size) of a `size`^2
    texture, and where in it."""
    corners = uv.astype(np.float64)[faces] * size - 0.5  # texel units, texel centres on whole numbers
    planes = _barycentric_planes(corners)
    owner = _owners(corners, planes, size)
    texels = np.flatnonzero(owner >= 0).astype(np.int32)
    face = owner[texels]
    weights = np.empty((len(texels), 3), dtype=np.float32)
    for start in range(0, len(texels), TEXELS_PER_CHUNK):
        chunk = slice(start, start + TEXELS_PER_CHUNK)
        row, column = np.divmod(texels[chunk], size)
        weights[chunk] = _weights(planes[face[chunk]], column, row)
    return Raster(size, texels, face, weights)


def _owners(corners: np.ndarray, planes: np.ndarray, size: int) -> np.ndarray:
    """The triangle whose inside holds each texel centre, -1 for none, as [size * size]: scanline by
    scanline, each triangle's rows of texel centres, the span of columns inside it on each row, then the
    texels of a bounded number of spans at once."""
    has_area = np.isfinite(planes).all(axis=(1, 2))
    top = np.clip(np.ceil(corners[..., 1].min(axis=1) - INSIDE_TOLERANCE), 0, size).astype(np.int64)
    bottom = np.clip(np.floor(corners[..., 1].max(axis=1) + INSIDE_TOLERANCE), -1, size - 1).astype(np.int64)
    face, row = _enumerate(top, np.where(has_area, np.maximum(bottom - top + 1, 0), 0))
    first, last = _span(planes[face], row, size)
    lengths = np.maximum(last - first + 1, 0)
    ends = np.cumsum(lengths)
    owner = np.full(size * size, -1, dtype=np.int32)
    chunk_start = 0
    while chunk_start < len(lengths):
        # as many whole spans as fit in a chunk (at least one)
        chunk_end = max(chunk_start + 1, int(np.searchsorted(ends, ends[chunk_start] + TEXELS_PER_CHUNK)))
        span, column = _enumerate(first[chunk_start:chunk_end], lengths[chunk_start:chunk_end])
        span += chunk_start
        # a texel centre on an edge may be claimed by both its triangles: one of the claims stands
        owner[row[span] * size + column] = face[span]
        chunk_start = chunk_end
    return owner


def _enumerate(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For runs of whole numbers (run i: counts[i] of them from starts[i]), every member's run and value."""
    run = np.repeat(np.arange(len(counts)), counts)
    run_offsets = np.cumsum(counts) - counts
    return run, starts[run] + (np.arange(len(run)) - run_offsets[run])


def _span(planes: np.ndarray, row: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The first and last column (clipped to the texture) of texel centres on `row` inside each triangle,
    given by its weight planes [N, 3, 3]: along a row, each weight is a line in x that must stay above
    -INSIDE_TOLERANCE."""
    slope = planes[..., 0]
    offset = planes[..., 1] * row[:, None] + planes[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = (-INSIDE_TOLERANCE - offset) / slope
    lower = np.where(slope > 0, bound, -np.inf).max(axis=1)
    upper = np.where(slope < 0, bound, np.inf).min(axis=1)
    # a weight constant along the row (an edge parallel to it) either holds everywhere or nowhere
    outside = ((slope == 0) & (offset < -INSIDE_TOLERANCE)).any(axis=1)
    first = np.clip(np.ceil(lower), 0, size).astype(np.int64)
    last = np.where(outside, -1, np.clip(np.floor(upper), -1, size - 1)).astype(np.int64)
    return first, last


def _barycentric_planes(corners: np.ndarray) -> np.ndarray:
    """Per triangle [F, 3 corners, (x, y)], each corner's weight as a plane over the texture: [F, 3, 3] with
    weight = a x + b y + c (not finite for a triangle without area)."""
    x, y = corners[..., 0], corners[..., 1]
    x_next, y_next = np.roll(x, -1, axis=1), np.roll(y, -1, axis=1)
    x_last, y_last = np.roll(x, -2, axis=1), np.roll(y, -2, axis=1)
    # a corner's weight is the opposite edge's line function, scaled to 1 at the corner
    planes = np.stack([y_next - y_last, x_last - x_next, x_next * y_last - x_last * y_next], axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return planes / _twice_area(x, y)[:, None, None]


def _twice_area(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])


def _weights(planes: np.ndarray, column: np.ndarray, row: np.ndarray) -> np.ndarray:
    return planes[..., 0] * column[:, None] + planes[..., 1] * row[:, None] + planes[..., 2]


def _fill_gutter(image: np.ndarray, filled: np.ndarray, texels: int) -> None:
    """Fills `image` [H, W, C] where `filled` [H, W] is False, both in place: `texels` times over, each empty
    texel next to filled ones takes their mean (a gutter that carries each chart's edge outward, so filtering
    across a seam picks up no foreign colour); then every texel still empty takes the mean of those filled at
    first, so low mip levels show no black. Each round looks only at the new ring of texels."""
    height, width, channels = image.shape
    colours, is_filled = image.reshape(-1, channels), filled.reshape(-1)
    chart_mean = colours[is_filled].mean(axis=0) if is_filled.any() else np.zeros(channels)
    step_row, step_column = np.array([(r, c) for r in (-1, 0, 1) for c in (-1, 0, 1) if r or c]).T
    for _ in range(texels):
        grid = is_filled.reshape(height, width)
        ring_row, ring_column = np.nonzero(_dilated(grid) & ~grid)
        if len(ring_row) == 0:
            break
        rows, columns = ring_row[:, None] + step_row, ring_column[:, None] + step_column
        within = (rows >= 0) & (rows < height) & (columns >= 0) & (columns < width)
        beside = np.clip(rows, 0, height - 1) * width + np.clip(columns, 0, width - 1)
        weight = within & is_filled[beside]
        ring = ring_row * width + ring_column
        colours[ring] = np.einsum("nk,nkc->nc", weight, colours[beside]) / weight.sum(axis=1, keepdims=True)
        is_filled[ring] = True
    colours[~is_filled] = chart_mean


def _dilated(mask: np.ndarray) -> np.ndarray:
    """The mask grown by one texel in all eight directions: along rows, then along columns."""
    rows = mask.copy()
    rows[1:] |= mask[:-1]
    rows[:-1] |= mask[1:]
    grown = rows.copy()
    grown[:, 1:] |= rows[:, :-1]
    grown[:, :-1] |= rows[:, 1:]
    return grown
