"""Generated GLBs as an artist sees them in real Blender: upright, facing front, true colours."""

from __future__ import annotations

import numpy as np
import torch
from fields import CENTRE, RADIUS, SEMI_AXES, THRESHOLD, blender_to_model, ellipsoid_field, expected_srgb

from sidecar.glb import mesh_to_glb
from sidecar.triposr.mesh import extract_mesh


def test_generated_glbs_look_right_in_blender(blender, tmp_path, tiny_model, golden):
    analytic = extract_mesh(ellipsoid_field, RADIUS, 96, THRESHOLD, 50_000)
    (tmp_path / "ellipsoid.glb").write_bytes(mesh_to_glb(analytic))
    scene_code = torch.from_numpy(golden["scene_codes"][0])
    learned = tiny_model.extract_mesh(scene_code, resolution=40)
    (tmp_path / "tiny.glb").write_bytes(mesh_to_glb(learned))

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
