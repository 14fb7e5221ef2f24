"""Generated GLBs as an artist sees them in real Blender: upright, facing front, true colours."""

from __future__ import annotations

import numpy as np
import torch
from fields import CENTRE, RADIUS, SEMI_AXES, THRESHOLD, blender_to_model, ellipsoid_field, expected_srgb

from sidecar.assets.surface import Surface
from sidecar.glb import surface_to_glb
from sidecar.pipeline import field_colour_source
from sidecar.triposr.mesh import find_surface


def coloured_surface(query, radius: float, resolution: int) -> Surface:
    """The field's isosurface with its colours at the vertices, as a local job without options writes it."""
    vertices, faces = find_surface(query, radius, resolution, THRESHOLD, 50_000)
    return Surface(vertices, faces, colours=field_colour_source(query, 50_000)(vertices))


def test_generated_glbs_look_right_in_blender(blender, tmp_path, tiny_model, golden):
    analytic = coloured_surface(ellipsoid_field, RADIUS, 96)
    (tmp_path / "ellipsoid.glb").write_bytes(surface_to_glb(analytic))
    scene_code = torch.from_numpy(golden["scene_codes"][0])
    learned = coloured_surface(tiny_model.field_query(scene_code), tiny_model.radius, 40)
    (tmp_path / "tiny.glb").write_bytes(surface_to_glb(learned))

    report = blender.run(
        "import_glb.py",
        tmp_path,
        str(tmp_path / "ellipsoid.glb"),
        str(tmp_path / "ellipsoid.npz"),
        str(tmp_path / "tiny.glb"),
        str(tmp_path / "tiny.npz"),
    )
    assert report[str(tmp_path / "ellipsoid.glb")]["vertices"] == len(analytic.vertices)

    seen = np.load(tmp_path / "ellipsoid.npz")
    positions = seen["corner_positions"]
    # Upright and facing front: the model's +x (toward the camera) is Blender's -Y, z stays up.
    centre = (positions.max(0) + positions.min(0)) / 2
    np.testing.assert_allclose(centre, [CENTRE[1], -CENTRE[0], CENTRE[2]], atol=0.01)
    np.testing.assert_allclose(positions.max(0) - positions.min(0), 2 * SEMI_AXES[[1, 0, 2]], atol=0.02)
    expected = expected_srgb(blender_to_model(positions))
    assert expected.min() < 0.05, "the colour test must include dark colours"
    assert np.abs(seen["corner_srgb"] - expected).max() <= 2 / 255

    # The learned model: every colour Blender shows is the one the network predicts at that point.
    seen = np.load(tmp_path / "tiny.npz")
    corners = seen["corner_positions"]
    _, predicted = tiny_model.query(scene_code, torch.from_numpy(blender_to_model(corners)).float())
    assert np.abs(seen["corner_srgb"] - predicted.numpy()).max() <= 2 / 255
