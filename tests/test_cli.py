"""The `generate` and `doctor` commands, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import trimesh
from glb_reader import read_glb
from gltf_validator import assert_valid
from service_harness import DEFAULT_STAGES


def sidecar(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sidecar", *args], capture_output=True, text=True, timeout=300
    )


def test_generate_writes_one_glb_per_image_and_reports_times(tmp_path, tiny_weights):
    image = tiny_weights / "input.png"
    second = tmp_path / "copy" / "input.png"  # same name, other folder: must not overwrite the first
    second.parent.mkdir()
    second.write_bytes(image.read_bytes())
    broken = tmp_path / "broken.png"
    broken.write_bytes(image.read_bytes()[:300])
    out = tmp_path / "out"
    done = sidecar(
        "generate", str(image), str(broken), str(second), "--out", str(out),
        "--weights", str(tiny_weights), "--device", "cpu", "--resolution", "32",
    )  # fmt: skip
    assert done.returncode == 1  # one image failed; the others still arrived
    assert sorted(path.name for path in out.iterdir()) == ["input-2.glb", "input.glb"]
    mesh = trimesh.load(out / "input.glb", force="mesh")
    assert len(mesh.faces) > 0
    assert "broken.png" in done.stdout and "damaged" in done.stdout
    for stage in [*DEFAULT_STAGES, "total"]:
        assert f"{stage} " in done.stdout
    assert "peak memory" in done.stdout


def test_generate_makes_a_textured_simplified_grounded_model_that_passes_the_validator(
    tmp_path, tiny_weights
):
    out = tmp_path / "out"
    done = sidecar(
        "generate", str(tiny_weights / "input.png"), "--out", str(out), "--weights", str(tiny_weights),
        "--device", "cpu", "--resolution", "40", "--faces", "2000", "--texture", "512", "--ground",
        "--height", "0.3",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for stage in ("decimate", "unwrap", "bake", "place"):
        assert f"{stage} " in done.stdout
    glb = read_glb((out / "input.glb").read_bytes())
    assert abs(len(glb.faces) - 2000) <= 40 and glb.texture.shape == (512, 512, 3)
    assert glb.tree["materials"][0]["name"] == "input"
    vertices = glb.attribute("POSITION")
    np.testing.assert_allclose([vertices[:, 1].min(), np.ptp(vertices[:, 1])], [0.0, 0.3], atol=1e-6)
    assert_valid((out / "input.glb").read_bytes(), folder=tmp_path)


def test_doctor_lists_versions_devices_and_weights(tiny_weights):
    done = sidecar("doctor", "--weights", str(tiny_weights))
    assert done.returncode == 0, done.stderr
    for label in ("python", "torch", "devices", "auto picks"):
        assert label in done.stdout
    assert f"yes ({tiny_weights / 'model.ckpt'})" in done.stdout
