"""Replicate model configurations, and turning what models return into a mesh; no sidecar needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from meshes import OURS, native_mesh, turned

from sidecar.assets.colour import srgb_to_linear
from sidecar.backends.models import ModelConfigError, load_models
from sidecar.backends.outputs import find_mesh, mesh_type, read_surface
from sidecar.jobs import JobFailed
from sidecar.pipeline import GenerationParams

SHAPE = {"model": "someone/shape", "input": {"picture": "{image}"}}


def models_file(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "models.json"
    path.write_text(json.dumps(config))
    return path


def test_a_models_file_adds_models_and_may_change_the_default(tmp_path):
    spec = {**SHAPE, "input": {"images": ["{image}"], "steps": 9}}
    config = {"default": "shape", "models": {"shape": spec}}
    models = load_models(models_file(tmp_path, config), price_per_second=0.001)
    assert list(models) == ["shape", "tripo-sr", "trellis", "hunyuan3d-2"]
    shape = models["shape"]
    assert (shape.version, shape.price_per_second) == (None, 0.001)
    assert shape.identity == "replicate:someone/shape:latest"
    assert shape.inputs(GenerationParams(), image="url") == {"images": ["url"], "steps": 9}
    tripo = models["tripo-sr"].inputs(GenerationParams(foreground_ratio=0.7, remove_background=False), "url")
    assert tripo == {"image_path": "url", "do_remove_background": False, "foreground_ratio": 0.7}


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ({"model": "no-owner", "input": {"image": "{image}"}}, "owner/name"),
        ({**SHAPE, "version": "v1"}, "64 hexadecimal digits"),
        ({**SHAPE, "input": {"image": "{picture}"}}, "unknown placeholder(s) picture"),
        ({**SHAPE, "input": {"prompt": "a mug"}}, 'send the image somewhere, as "{image}"'),
        ({**SHAPE, "frame": "upside-down"}, '"frame" must be one of ours, tripo-sr-mirrored'),
        ({**SHAPE, "frame": [[2, 0, 0], [0, 1, 0], [0, 0, 1]]}, "without stretching it"),
        ({**SHAPE, "price": 1}, "unknown key(s) price"),
    ],
)
def test_a_model_entry_that_cannot_work_is_refused_with_what_is_wrong(tmp_path, spec, complaint):
    with pytest.raises(ModelConfigError) as refused:
        load_models(models_file(tmp_path, {"models": {"shape": spec}}))
    assert str(refused.value).startswith("Replicate model 'shape': ")
    assert complaint in str(refused.value)


def test_serve_stops_at_once_on_a_broken_models_file(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "serve", "--replicate-models", str(tmp_path / "missing.json")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    missing = tmp_path / "missing.json"
    said = f"error: Cannot read the Replicate models file {missing}: No such file or directory."
    assert done.stderr.strip() == said


def test_the_mesh_is_found_where_the_model_puts_it():
    output = {"color_video": "https://r.example/v.mp4", "model_file": "https://r.example/m.glb"}
    assert find_mesh(output, ("model_file",), "m") == "https://r.example/m.glb"
    assert find_mesh(output, (), "m") == "https://r.example/m.glb", "the first mesh of a dict"
    assert find_mesh(["https://r.example/a.png", "data:model/obj;base64,dg=="], (), "m").startswith("data:")
    with pytest.raises(JobFailed) as missing:
        find_mesh({"videos": ["https://r.example/v.mp4"]}, (), "someone/shape")
    assert missing.value.code == "output_unusable"
    assert str(missing.value) == "The output of someone/shape holds no mesh file: a dict of videos."
    with pytest.raises(JobFailed, match="has no mesh; its model entry may need another"):
        find_mesh(output, ("mesh",), "m")


def test_an_obj_with_vertex_colours_is_read_and_what_is_not_a_mesh_is_refused():
    mesh = turned(native_mesh(), OURS)
    obj = trimesh.exchange.obj.export_obj(mesh, include_color=True).encode()
    read = read_surface(obj, "https://r.example/out.obj?sig=1", "m", np.eye(3))
    np.testing.assert_allclose(read.vertices, mesh.vertices, atol=1e-6)
    np.testing.assert_allclose(
        read.colours, srgb_to_linear(mesh.visual.vertex_colors[:, :3] / 255), atol=1e-6
    )
    assert mesh_type("data:model/gltf-binary;base64,Z2xURg==") == "glb"
    with pytest.raises(JobFailed) as refused:
        read_surface(b"\x00\x00\x00 ftypmp42", "https://r.example/out.mp4", "m", np.eye(3))
    assert "returned https://r.example/out.mp4, which is not a mesh format" in str(refused.value)
    with pytest.raises(JobFailed, match="The GLB m returned cannot be read"):
        read_surface(b"glTF" + bytes(20), "https://r.example/out.glb", "m", np.eye(3))


def test_a_mirroring_frame_keeps_the_faces_facing_out():
    mesh = turned(native_mesh(), OURS)
    mirror = np.diag([1.0, 1.0, -1.0])
    read = read_surface(mesh.export(file_type="glb"), "https://r.example/out.glb", "m", mirror)
    mirrored = trimesh.Trimesh(read.vertices, read.faces, process=False)
    np.testing.assert_allclose(read.vertices, mesh.vertices * [1, 1, -1], atol=1e-6)
    assert mirrored.volume > 0
