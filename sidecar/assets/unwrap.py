"""A UV atlas (xatlas): the surface cut into charts, laid flat and packed into one square texture."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import xatlas

from .cleanup import face_areas
from .surface import Surface

GUTTER = 4  # texels of each chart's own colour around it, so filtering and the first mip levels stay clean
# xatlas keeps `padding` texels free on every side of a chart, so charts are 2 * padding apart. The atlas is
# packed at about the texture's scale, then scaled to fit it: twice the gutter survives a scale-down of 2x.
PADDING = 2 * GUTTER
PACK_ATTEMPTS = 4  # many tiny charts outgrow the texture by more: each attempt pads more
# Charts no larger than this share of the whole: xatlas's time grows steeply with a chart's size (a 20k-face
# sphere in 6 charts takes 3 s, in 90 half a second; a 20k-face simplified ellipsoid 4.7 s unbounded, 0.7 s
# so), and the charts pack about as tightly as the hundreds it makes unbounded.
MAX_CHART_SHARE = 1 / 32


@dataclass(frozen=True)
class Unwrapped:
    """A surface split along its seams, and where each of its vertices lies in the texture."""

    surface: Surface  # geometry only: colours come from the bake
    uv: np.ndarray  # float32 [V, 2], glTF's convention: (0, 0) the image's top left, v growing downward


def unwrap(surface: Surface, size: int) -> Unwrapped:
    """Charts packed for a `size`^2 texture, at least GUTTER texels from each other and from its border."""
    padding = PADDING
    for attempt in range(PACK_ATTEMPTS):
        atlas = _atlas(surface, size, padding)
        extent = max(atlas.width, atlas.height) + 2 * padding  # with a margin along the border
        if padding * size / extent >= GUTTER or attempt == PACK_ATTEMPTS - 1:
            break
        padding = math.ceil(2 * GUTTER * extent / size)
    vertex_of_corner, faces, uv = atlas[0]
    # xatlas's rows grow downward, as glTF's v does; its coordinates come divided by the atlas's size
    texels = uv * [atlas.width, atlas.height] + padding
    return Unwrapped(
        surface.with_geometry(surface.vertices[vertex_of_corner], faces), (texels / extent).astype(np.float32)
    )


def _atlas(surface: Surface, size: int, padding: int) -> xatlas.Atlas:
    atlas = xatlas.Atlas()
    atlas.add_mesh(surface.vertices.astype(np.float32), surface.faces.astype(np.uint32))
    charts = xatlas.ChartOptions()
    charts.max_chart_area = float(face_areas(surface).sum() * MAX_CHART_SHARE)
    packing = xatlas.PackOptions()
    # With no texels per unit given, xatlas picks the scale that would about fill `size` and lets the atlas
    # grow as packing needs: one pass, as tight as it packs.
    packing.resolution = size
    packing.padding = padding
    atlas.generate(charts, packing)
    return atlas
