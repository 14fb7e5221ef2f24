"""The Output settings: the progress of the stages they call for, and, in real Blender, textured models from a
real sidecar as imported, saved and rendered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh
from addon_helpers import make_images
from blender_env import run_script
from fields import RADIUS, THRESHOLD, ellipsoid_field
from test_tracker import event
from triposr_addon.tracker import CLOUD_STAGES, LOCAL_STAGES, STAGES, Job, JobTracker

from sidecar.assets.finish import finish
from sidecar.assets.options import AssetOptions
from sidecar.assets.surface import Surface
from sidecar.clock import StageClock
from sidecar.glb import surface_to_glb
from sidecar.pipeline import field_colour_source
from sidecar.triposr.mesh import find_surface

SHARED_MATERIAL = "TripoSR Vertex Colour"
# Renders of one surface with its colours at the vertices and baked into a texture, lit by a sun alone with no
# bounces and one sample (see addon_output.py): nothing but colours and normals can make two such renders
# differ. The figures are of 8-bit display values, as measured in Blender 4.5: right, a mean difference of
# 0.0005 and no pixel off by more than 1/255. Wrong, the mean or single pixels move far past the bounds: the
# texture read as Non-Color, mean 0.11; its V flipped, mean 0.15; no gutter around the charts (black texels
# at the seams), a pixel 0.42 darker; the mesh left split at its UV seams (shading creases), pixels 0.11
# darker and 0.16 brighter.
MEAN_DIFFERENCE = 0.01
PIXEL_DIFFERENCE = 0.05


def reported_stages(params: dict, coloured: bool) -> list[str]:
    """The asset stages the sidecar reports for a job's parameters, as its own `finish` reports them on a
    small surface (one that arrives coloured, as a cloud model does, or not)."""
    sphere = trimesh.creation.icosphere(subdivisions=4)  # 5,120 faces
    grey = np.full((len(sphere.vertices), 3), 0.5, dtype=np.float32)
    surface = Surface(sphere.vertices, sphere.faces, grey if coloured else None)
    options = AssetOptions(**{key: value for key, value in params.items() if key != "backend"})
    reported: list[str] = []
    clock = StageClock(lambda stage, _fraction: None if stage in reported else reported.append(stage))
    finish(surface, lambda points: np.full((len(points), 3), 0.5, dtype=np.float32), options, clock)
    return [*reported, "export"]


@pytest.mark.parametrize(
    "params",
    [
        {"backend": "local"},
        {"backend": "local", "cleanup": False, "faces": 1000, "texture": 512, "ground": True, "height": 2.0},
        {"backend": "replicate"},
        {"backend": "replicate", "faces": 1000, "texture": 512, "ground": True},
    ],
)
def test_the_bar_runs_once_across_the_stages_a_job_goes_through(params):
    cloud = params["backend"] == "replicate"
    stages = [*(CLOUD_STAGES if cloud else LOCAL_STAGES), *reported_stages(params, coloured=cloud)]
    tracker = JobTracker()
    job = tracker.add(Job("j1", "mug", params=params))
    tracker.apply(event("accepted", "j1", params=params))
    assert job.plan() == stages, "the stages the parameters call for, as the sidecar reports them"
    bar = [job.overall]
    for stage in stages:
        for fraction in (0.0, 0.5, 1.0):
            tracker.apply(event("progress", "j1", stage=stage, fraction=fraction))
            assert stage in STAGES and job.progress_text() == f"{STAGES[stage][0]} {fraction:.0%}"
            bar.append(job.overall)
    assert bar == sorted(bar) and (bar[0], bar[-1]) == (0.0, 1.0), "never back, from empty to full"


def test_the_summary_names_the_texture():
    result = {"vertices": 3360, "faces": 5000, "params": {"texture": 1024}}
    assert Job("j1", "mug", result=result).summary()[1:] == ["3,360 vertices, 5,000 faces", "1024 px texture"]
    result["params"]["texture"] = 0
    assert Job("j2", "mug", result=result).summary()[1:] == ["3,360 vertices, 5,000 faces"]


def analytic_pair(folder: Path) -> Path:
    """One surface of a field with known colours, written twice: with vertex colours, and with a texture baked
    from the same field. Only the colouring differs: the textured one is the coloured one unwrapped."""
    vertices, faces = find_surface(ellipsoid_field, RADIUS, 96, THRESHOLD, 50_000)
    source = field_colour_source(ellipsoid_field, 50_000)
    clock = StageClock(None)
    coloured = finish(Surface(vertices, faces), source, AssetOptions(faces=5000), clock)
    textured = finish(coloured, source, AssetOptions(cleanup=False, texture=1024), clock)
    assert textured.colours is None and len(textured.faces) == len(coloured.faces)
    folder.mkdir()
    (folder / "ellipsoid_colours.glb").write_bytes(surface_to_glb(coloured, "Ellipsoid"))
    (folder / "ellipsoid_texture.glb").write_bytes(surface_to_glb(textured, "Ellipsoid"))
    return folder


def render_differences(renders: dict[str, np.ndarray]) -> dict[str, float]:
    """How the textured model's renders differ from the vertex-coloured one's over the pixels both cover."""
    colours, texture = renders["colours"], renders["texture"]
    covered = colours[..., 3] > 0.999, texture[..., 3] > 0.999
    both = covered[0] & covered[1]
    brightness = colours[..., :3].mean(-1)[both]
    lighter = texture[..., :3].mean(-1) - colours[..., :3].mean(-1)  # seams would be much darker
    return {
        "overlap": float(both.sum() / (covered[0] | covered[1]).sum()),
        "brightness": float(brightness.mean()),
        "spread": float(brightness.std()),
        "mean": float(np.abs(texture[..., :3] - colours[..., :3])[both].mean()),
        "darkest": float(lighter[both].min()),
        "brightest": float(lighter[both].max()),
    }


def assert_textured(model: dict, name: str, size: int) -> None:
    """One material and one packed image, both called after the model; a UV map; no colour attribute."""
    assert model == {
        **model,
        "name": name,
        "material": name,
        "material_slots": 1,
        "material_users": 1,
        "images": 1,
        "image": name,
        "packed": True,
        "size": [size, size],
        "uv_maps": ["UVMap"],
        "color_attributes": [],
        "base_colour_from": "ShaderNodeTexImage",
    }
    assert model["pixels_spread"] > 0.01, "the image has its pixels"


def assert_sent_and_received(params: dict, **expected) -> None:
    """The add-on sent the Output settings as expected, and the sidecar accepted and ran what it sent."""
    sent = params["sent"]
    assert {key: sent[key] for key in expected} == expected
    for echo in ("accepted", "result"):
        assert {key: params[echo][key] for key in sent} == sent, echo


def assert_faces(model: dict, asked: int) -> None:
    assert abs(model["faces"] - asked) <= 0.02 * asked, f"{model['faces']} faces for {asked}"


def test_textured_models_import_save_and_render_as_their_colours_do(
    blender, addon_zip, running_sidecar, tmp_path, record_property
):
    images = make_images(tmp_path / "images", 2)
    report = run_script(
        blender,
        "addon_output.py",
        tmp_path,
        zip=str(addon_zip),
        endpoint=running_sidecar.endpoint,
        images=[str(path) for path in images],
        pair=str(analytic_pair(tmp_path / "pair")),
    )

    textured = report["textured"]
    model = textured["model"]
    assert_textured(model, "object_1", 1024)
    assert_faces(model, 5000)
    expected = {"texture": 1024, "faces": 5000, "cleanup": True, "ground": True, "height": 1.5}
    assert_sent_and_received(textured["params"], **expected)
    assert "1024 px texture" in textured["summary"]
    # On the ground: the origin at the cursor, the base's middle on it, and as tall as asked.
    low, high = np.array(model["bounds"])
    assert model["location"] == [1.0, 2.0, 0.5] and model["parent"] is None
    np.testing.assert_allclose([*(low[:2] + high[:2]) / 2, low[2]], [1.0, 2.0, 0.5], atol=1e-4)
    assert abs(high[2] - low[2] - 1.5) < 1e-3

    copy, other = report["batch"]
    assert copy["state"] == other["state"] == "DONE", report["batch"]
    assert copy["message"] == "from the store", "the copy of the first image is served from the store"
    assert_textured(copy, "copy", 1024)  # its GLB calls everything object_1
    assert_textured(other, "other", 1024)
    assert report["listed"] == 1, "Recent Results lists the textured model"
    assert_textured(report["recent"], "again", 1024)

    vertex_colours = report["vertex_colours"]
    model = vertex_colours["model"]
    assert model["material"] == SHARED_MATERIAL and model["uv_maps"] == [] and model["color_attributes"]
    # Simplified (the full surface has 40,000 faces), its floating pieces kept: no triangle twice, which
    # Blender would drop on import
    assert abs(model["faces"] - 3000) <= 0.02 * 3000
    assert_sent_and_received(
        vertex_colours["params"], texture=0, faces=3000, cleanup=False, ground=False, height=0.0
    )

    # Saved and opened again: every texture is still in the file, in use, with its pixels.
    textured_names = ["object_1", "copy", "other", "again", "ellipsoid_texture"]
    for name in textured_names:
        assert_textured(report["reopened"][name], name, 1024)
    assert report["reopened"]["ellipsoid_colours"]["material"] == SHARED_MATERIAL
    assert report["materials"] == sorted([*textured_names, SHARED_MATERIAL]), "nothing else, nothing twice"
    assert report["images"] == sorted(textured_names)

    differences = render_differences(dict(np.load(tmp_path / "renders.npz")))
    record_property("render_differences", differences)
    print(f"\nBlender {blender.series}, textured against vertex-coloured render: {differences}")
    assert differences["overlap"] > 0.99, "the same silhouette from every side"
    assert differences["brightness"] > 0.1 and differences["spread"] > 0.05, "lit, and in colour"
    assert differences["mean"] < MEAN_DIFFERENCE
    assert differences["darkest"] > -PIXEL_DIFFERENCE and differences["brightest"] < PIXEL_DIFFERENCE

    assert "TRIPOSR_PT_output" in report["panels"]
    assert len(report["drawn"]) == 7, sorted(report["drawn"])
    for state, complaints in report["drawn"].items():
        assert complaints == [], f"drawing the panels while {state}: {complaints}"
