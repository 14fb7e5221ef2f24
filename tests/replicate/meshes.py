"""Meshes for the fake Replicate to return, made from one asymmetric mesh whose right answer is known.

The mesh is built in TripoSR's own frame (z up, the input camera on +x). What camenduru/tripo-sr writes is
its gradio orientation with the mirror, (y, z, -x); what a local job writes, and so what every result must
be, is (y, z, x).
"""

from __future__ import annotations

import numpy as np
import trimesh
from glb_reader import read_glb
from PIL import Image

from sidecar.assets.colour import srgb_to_linear

# Rows: the glTF axes as combinations of TripoSR's (x, y, z).
TRIPO_SR_ON_REPLICATE = np.array([[0, 1, 0], [0, 0, 1], [-1, 0, 0]])  # a mirror
OURS = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]])


def native_mesh() -> trimesh.Trimesh:
    """A box off the centre toward the camera, with one corner pulled out, coloured by position."""
    box = trimesh.creation.box(extents=(0.2, 0.4, 0.8))
    box.vertices[0] += (0.05, -0.1, -0.2)  # no mirror or turn maps it onto itself
    box.apply_translation((0.3, 0.1, 0.05))
    unit = (box.vertices - box.vertices.min(0)) / np.ptp(box.vertices, axis=0)
    box.visual.vertex_colors = np.column_stack([unit * 255, np.full(len(unit), 255)]).astype(np.uint8)
    return box


def turned(mesh: trimesh.Trimesh, rows: np.ndarray) -> trimesh.Trimesh:
    transform = np.eye(4)
    transform[:3, :3] = rows
    return mesh.copy().apply_transform(transform)


def as_tripo_sr_on_replicate() -> bytes:
    """The GLB camenduru/tripo-sr returns: trimesh's export of the mirrored mesh, colours as sRGB bytes."""
    return turned(native_mesh(), TRIPO_SR_ON_REPLICATE).export(file_type="glb")


def textured_glb() -> bytes:
    """A GLB with a texture instead of vertex colours, as TRELLIS and Hunyuan3D return: red above, blue
    below (glTF's y is up)."""
    mesh = turned(native_mesh(), OURS)
    up = mesh.vertices[:, 1] > mesh.vertices[:, 1].mean()
    uv = np.column_stack([np.full(len(up), 0.5), np.where(up, 0.75, 0.25)])
    texture = Image.new("RGB", (4, 4), (0, 0, 255))
    texture.paste((255, 0, 0), (0, 0, 4, 2))  # the image's top rows: v near 1
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, image=texture)
    return mesh.export(file_type="glb")


def textured_ball_glb() -> bytes:
    """A textured sphere of 1,280 triangles, red in its upper half and blue in its lower, off the origin."""
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    ball.apply_translation((0.1, 0.3, -0.2))
    up = ball.vertices[:, 1] > 0.3
    uv = np.column_stack([np.full(len(up), 0.5), np.where(up, 0.75, 0.25)])
    texture = Image.new("RGB", (64, 64), (0, 0, 255))
    texture.paste((255, 0, 0), (0, 0, 64, 32))  # the image's top half: v near 1
    ball.visual = trimesh.visual.TextureVisuals(uv=uv, image=texture)
    return ball.export(file_type="glb")


def assert_in_our_frame(glb: bytes) -> None:
    """The GLB holds the native mesh as a local job writes it: same places, outward faces, linear colours."""
    expected = turned(native_mesh(), OURS)
    got = read_glb(glb)
    got_mesh = trimesh.Trimesh(got.attribute("POSITION"), got.faces, process=False)
    np.testing.assert_allclose(got_mesh.vertices, expected.vertices, atol=1e-6)
    assert got_mesh.volume > 0, "the faces point out"
    linear = srgb_to_linear(expected.visual.vertex_colors[:, :3] / 255.0)
    assert np.abs(got.attribute("COLOR_0")[:, :3] - linear).max() <= 1e-4  # COLOR_0 is linear
