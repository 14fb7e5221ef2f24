"""build.py: the extension zip for every platform, checked by Blender's own validator."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
import tomllib
from addon_helpers import ROOT, load_build

PLATFORMS = {"macos-arm64": "macosx", "linux-x64": "manylinux", "windows-x64": "win_amd64"}


def test_the_release_zip_holds_the_addon_shared_and_pyzmq_for_each_platform_and_python(
    tmp_path, blender_validator
):
    subprocess.run([sys.executable, str(ROOT / "build.py"), "--out", str(tmp_path)], check=True, timeout=600)
    (archive,) = tmp_path.glob("*.zip")
    manifest_template = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())
    assert archive.name == f"{manifest_template['id']}-{manifest_template['version']}.zip"

    with zipfile.ZipFile(archive) as zip_file:
        names = set(zip_file.namelist())
        manifest = tomllib.loads(zip_file.read("blender_manifest.toml").decode())
    assert {"__init__.py", "tick.py", "ui/panels.py", "shared/__init__.py", "shared/client.py"} <= names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]

    assert manifest["schema_version"] == "1.0.0" and manifest["blender_version_min"] == "4.2.0"
    assert set(manifest["permissions"]) == {"network", "files"}
    assert sorted(manifest["platforms"]) == sorted(PLATFORMS)
    wheels = [wheel.removeprefix("./") for wheel in manifest["wheels"]]
    assert set(wheels) <= names
    for tag in PLATFORMS.values():
        for python in ("-cp311-cp311-", "-cp312-abi3-"):
            assert len([w for w in wheels if tag in w and python in w]) == 1, (tag, python, wheels)


def test_the_validator_is_really_asked(tmp_path, blender_validator):
    build = load_build()
    staged = build.stage_sources(tmp_path / "triposr")
    manifest = staged / "blender_manifest.toml"
    manifest.write_text(manifest.read_text().replace('type = "add-on"', 'type = "plugin"'))
    build.write_zip(staged, tmp_path / "broken.zip")
    assert build.validators(), "the Blender tests' venvs bring blender_ext.py"
    with pytest.raises(build.BuildError, match="type"):
        build.validate(tmp_path / "broken.zip", build.validators())


def test_the_addon_type_checks_against_blender_42s_stubs(tmp_path):
    """mypy over the add-on as packaged (with `shared/` inside it), with fake-bpy-module-4-2."""
    load_build().stage_sources(tmp_path / "triposr")
    process = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "-p", "triposr"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stdout + process.stderr
