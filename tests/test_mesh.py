"""Mesh extraction on a field with a known answer: winding, size, placement, colours, the GLB."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from fields import CENTRE, RADIUS, SEMI_AXES, THRESHOLD, ellipsoid_field, expected_srgb, gltf_to_model

from sidecar.triposr.errors import EmptySurfaceError
from sidecar.triposr.grid import density_grid
from sidecar.triposr.mesh import extract_mesh


@pytest.fixture(scope="module")
def ellipsoid() -> trimesh.Trimesh:
    return extract_mesh(ellipsoid_field, RADIUS, 64, THRESHOLD, chunk_size=10_000)


def test_faces_point_outward(ellipsoid):
    assert ellipsoid.is_watertight
    assert ellipsoid.volume > 0  # signed volume: positive when the faces wind outward
    expected_volume = 4 / 3 * np.pi * SEMI_AXES.prod()
    assert ellipsoid.volume == pytest.approx(expected_volume, rel=0.03)


def test_size_and_position_follow_the_frame_change(ellipsoid):
    # glTF is y up with the front toward +z: model (x, y, z) lands at glTF (y, z, x).
    low, high = ellipsoid.bounds
    np.testing.assert_allclose((low + high) / 2, CENTRE[[1, 2, 0]], atol=0.01)
    np.testing.assert_allclose(high - low, 2 * SEMI_AXES[[1, 2, 0]], atol=0.03)


def test_vertex_colours_are_the_field_colours_at_the_vertices(ellipsoid):
    expected = expected_srgb(gltf_to_model(ellipsoid.vertices)) * 255
    assert np.abs(ellipsoid.visual.vertex_colors[:, :3] - expected).max() <= 0.5 + 1e-3


def test_the_density_volume_does_not_depend_on_the_chunk_size():
    whole = density_grid(ellipsoid_field, 24, RADIUS, chunk_size=24**3)
    chunked = density_grid(ellipsoid_field, 24, RADIUS, chunk_size=1000)
    np.testing.assert_array_equal(whole, chunked)


def test_progress_is_reported_and_raising_from_it_stops_the_evaluation():
    seen = []

    def progress(fraction: float) -> None:
        seen.append(fraction)
        if fraction > 0.5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        density_grid(ellipsoid_field, 20, RADIUS, chunk_size=1000, progress=progress)
    assert seen == sorted(seen) and 0.5 < seen[-1] < 1.0


def test_no_surface_is_a_clear_error():
    def empty(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.full((len(points),), 1.0), torch.zeros(len(points), 3)

    with pytest.raises(EmptySurfaceError, match="never crosses the threshold 25"):
        extract_mesh(empty, RADIUS, 16, THRESHOLD, chunk_size=1000)
