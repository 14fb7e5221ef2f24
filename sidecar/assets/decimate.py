"""Simplification to a face count, by quadric error (fast-simplification)."""

from __future__ import annotations

import fast_simplification
import numpy as np

from .cleanup import face_areas, restrict_to_faces
from .surface import Surface

TOLERANCE = 0.02  # the face count may miss the target by this share
ATTEMPTS = 4


def decimate(surface: Surface, target_faces: int) -> Surface:
    """The surface simplified to about `target_faces` triangles, wound as before.

    Its colours and texture coordinates no longer fit and are dropped: colour comes back from a colour source.
    A target at or above the current count returns the surface as it is.
    """
    if target_faces >= len(surface.faces):
        return surface
    attempts, request = [], target_faces
    for _ in range(ATTEMPTS):
        points, triangles = fast_simplification.simplify(
            surface.vertices, surface.faces, target_count=request
        )
        attempts.append(without_degenerate_faces(surface.with_geometry(points, triangles)))
        miss = len(attempts[-1].faces) / target_faces - 1
        if abs(miss) <= TOLERANCE:
            break
        # the simplifier can stop short on a stubborn mesh, and dropping degenerate faces can overshoot
        request = max(1, min(len(surface.faces) - 1, round(request / (1 + miss))))
    return min(attempts, key=lambda attempt: abs(len(attempt.faces) - target_faces))


def without_degenerate_faces(surface: Surface) -> Surface:
    """Without faces of no area or on the same three vertices as another (collapses can leave both), nor
    vertices that no face uses any more."""
    faces = surface.faces[face_areas(surface) > 0]
    _, first = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
    return restrict_to_faces(surface, faces[np.sort(first)])
