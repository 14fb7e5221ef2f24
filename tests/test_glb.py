"""The GLB writer: what goes in comes back out, and the Khronos glTF Validator finds nothing wrong."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from glb_reader import read_glb
from gltf_validator import assert_valid, validate

from sidecar.assets.surface import Surface
from sidecar.glb import ROUGHNESS, surface_to_glb, vertex_normals


@pytest.fixture(scope="module")
def ball() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=3, radius=0.5)


def coloured(mesh: trimesh.Trimesh) -> Surface:
    colours = (mesh.vertices - mesh.vertices.min(0)) / np.ptp(mesh.vertices, axis=0)
    colours[:10] = [0.0, 1e-4, 1.0]  # the darkest and brightest values survive too
    return Surface(mesh.vertices, mesh.faces, colours=colours.astype(np.float32))


def textured(mesh: trimesh.Trimesh) -> Surface:
    uv = (mesh.vertices[:, :2] + 0.5).astype(np.float32)
    texture = np.random.default_rng(1).integers(0, 256, (64, 32, 3), dtype=np.uint8)
    return Surface(mesh.vertices, mesh.faces, uv=uv, texture=texture)


def test_a_vertex_coloured_surface_comes_back_as_written(ball):
    surface = coloured(ball)
    glb = read_glb(surface_to_glb(surface, "mug"))
    np.testing.assert_array_equal(glb.attribute("POSITION"), surface.vertices)
    np.testing.assert_array_equal(glb.faces, surface.faces)
    # linear colours in normalised 16 bits: far finer than the 8 bits of the sRGB a screen shows
    np.testing.assert_allclose(glb.attribute("COLOR_0")[:, :3], surface.colours, atol=0.5 / 65535 + 1e-9)
    assert (glb.attribute("COLOR_0")[:, 3] == 1.0).all()
    assert glb.attribute("TEXCOORD_0") is None and "materials" not in glb.tree
    assert glb.tree["nodes"] == [{"name": "mug", "mesh": 0}] and glb.tree["meshes"][0]["name"] == "mug"


def test_normals_are_unit_length_and_point_out(ball):
    normals = read_glb(surface_to_glb(coloured(ball))).attribute("NORMAL")
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)
    outward = ball.vertices / np.linalg.norm(ball.vertices, axis=1, keepdims=True)
    assert (np.sum(normals * outward, axis=1) > 0.99).all()


def test_a_vertex_in_no_face_still_gets_a_unit_normal():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5]], dtype=np.float32)
    normals = vertex_normals(vertices, np.array([[0, 1, 2]]))
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0)


def test_copies_of_a_vertex_split_at_a_uv_seam_share_one_normal(ball):
    """A seam splits vertices; each copy has only the faces on its side, yet no crease may show."""
    vertices = np.vstack([ball.vertices, ball.vertices[:1]])
    faces = ball.faces.copy()
    side = np.flatnonzero((faces == 0).any(1))[:2]  # two of vertex 0's faces move to its copy
    faces[side] = np.where(faces[side] == 0, len(ball.vertices), faces[side])
    normals = vertex_normals(vertices.astype(np.float32), faces, weld=True)
    np.testing.assert_allclose(normals[0], normals[-1])
    np.testing.assert_allclose(
        normals[0], vertex_normals(ball.vertices.astype(np.float32), ball.faces)[0], atol=1e-6
    )


def test_a_textured_surface_has_its_uvs_texture_and_one_pbr_material(ball):
    surface = textured(ball)
    glb = read_glb(surface_to_glb(surface, "mug"))
    np.testing.assert_array_equal(glb.attribute("TEXCOORD_0"), surface.uv)
    np.testing.assert_array_equal(glb.texture, surface.texture)
    assert glb.attribute("COLOR_0") is None
    (material,) = glb.tree["materials"]
    assert material["name"] == "mug"
    assert material["pbrMetallicRoughness"] == {
        "baseColorTexture": {"index": 0},
        "metallicFactor": 0.0,
        "roughnessFactor": ROUGHNESS,
    }
    assert glb.tree["meshes"][0]["primitives"][0]["material"] == 0
    assert glb.tree["images"][0]["mimeType"] == "image/png"


def test_every_kind_of_glb_we_write_passes_the_khronos_validator(ball, tmp_path):
    large = trimesh.creation.icosphere(subdivisions=7)  # over 65,535 vertices: 32-bit indices
    assert len(large.vertices) > 0xFFFF
    large_glb = surface_to_glb(coloured(large))
    assert read_glb(large_glb).tree["accessors"][-1]["componentType"] == 5125
    plain = Surface(ball.vertices, ball.faces)
    assert_valid(
        surface_to_glb(coloured(ball)),
        surface_to_glb(textured(ball)),
        large_glb,
        surface_to_glb(plain),
        folder=tmp_path,
    )


def test_the_validator_is_really_asked(ball, tmp_path):
    """A file with a broken accessor must fail, or the test above proves nothing."""
    broken = bytearray(surface_to_glb(coloured(ball)))
    broken[broken.index(b'"count":') + 8] = ord("9")  # the first accessor claims more than its view holds
    path = tmp_path / "broken.glb"
    path.write_bytes(bytes(broken))
    (issues,) = validate(path)
    assert issues["numErrors"] > 0
