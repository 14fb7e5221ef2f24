"""Placement: where the model stands and how tall it is, in glTF's frame (y up, metres)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .surface import Surface


def place(surface: Surface, ground: bool, height: float) -> Surface:
    """With `ground`, the bounding box's bottom centre moved to the origin, so the model stands on the
    ground at the origin; with `height` > 0, the model scaled uniformly about that bottom centre (wherever
    it is) until its bounding box is `height` tall."""
    if len(surface.vertices) == 0:
        return surface
    vertices = surface.vertices.astype(np.float64)
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    bottom_centre = np.array([(low[0] + high[0]) / 2, low[1], (low[2] + high[2]) / 2])
    scale = height / (high[1] - low[1]) if height > 0 and high[1] > low[1] else 1.0
    anchor = np.zeros(3) if ground else bottom_centre
    return replace(surface, vertices=((vertices - bottom_centre) * scale + anchor).astype(np.float32))
