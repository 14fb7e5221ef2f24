"""Generated GLBs as an artist sees them in real Blender: upright, facing front, true colours."""

from __future__ import annotations

import numpy as np
import torch

from sidecar.glb import mesh_to_glb
from sidecar.triposr.mesh import extract_mesh

RADIUS = 0.87
# An ellipsoid off the centre toward the input camera (+x), to the image's right (+y) and up (+z),
# with a different semi-axis along each model axis so any axis swap shows.
CENTRE = np.array([0.3, 0.15, 0.2])
SEMI_AXES = np.array([0.2, 0.3, 0.4])


def ellipsoid_field(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Density 50 at the centre, 25 on the ellipsoid; colour a gradient reaching near-black."""
    offset = (points.double() - torch.from_numpy(CENTRE)) / torch.from_numpy(SEMI_AXES)
    density = 50.0 * torch.exp(-np.log(2.0) * (offset**2).sum(1))
    return density.float(), expected_srgb(points.numpy())


def expected_srgb(model_points: np.ndarray) -> torch.Tensor:
    # 0..1 across the ellipsoid's bounding box, so the colours span from near-black to full.
    unit = (np.asarray(model_points, dtype=np.float64) - CENTRE + SEMI_AXES) / (2 * SEMI_AXES)
    color = np.stack([unit[:, 0], 1.0 - unit[:, 1], unit[:, 2] ** 3], axis=1)
    return torch.from_numpy(np.clip(color, 0.0, 1.0)).float()


def blender_to_model(points: np.ndarray) -> np.ndarray:
    """Blender (X, Y, Z) = model (y, -x, z): front (+x) toward -Y, image-right (+y) toward +X."""
    return np.stack([-points[:, 1], points[:, 0], points[:, 2]], axis=1)


def test_generated_glbs_look_right_in_blender(blender, tmp_path, tiny_model, golden):
    analytic = extract_mesh(ellipsoid_field, RADIUS, 96, 25.0, 50_000)
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
    expected = expected_srgb(blender_to_model(positions)).numpy()
    assert expected.min() < 0.05, "the colour test must include dark colours"
    assert np.abs(seen["corner_srgb"] - expected).max() <= 2 / 255

    # The learned model: every colour Blender shows is the one the network predicts at that point.
    seen = np.load(tmp_path / "tiny.npz")
    corners = seen["corner_positions"]
    _, predicted = tiny_model.query(scene_code, torch.from_numpy(blender_to_model(corners)).float())
    assert np.abs(seen["corner_srgb"] - predicted.numpy()).max() <= 2 / 255
