"""build.py: the extension zip for every platform, checked by Blender's own validator."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib
from addon_helpers import ROOT, load_build

PLATFORMS = {"macos-arm64": "macosx", "linux-x64": "manylinux", "windows-x64": "win_amd64"}
# What a wheel's platform tag must end with to install on each of Blender's platforms.
WHEEL_PLATFORMS = {
    "macos-arm64": ("_arm64", "_universal2"),
    "linux-x64": ("_x86_64",),
    "windows-x64": ("win_amd64",),
}
WHEEL_NAME = re.compile(
    r"(?P<name>[^-]+)-[^-]+(-\d[^-]*)?-(?P<python>[^-]+)-(?P<abi>[^-]+)-(?P<platform>[^-]+)\.whl"
)


def manifest_of(archive) -> dict:
    with zipfile.ZipFile(archive) as zip_file:
        return tomllib.loads(zip_file.read("blender_manifest.toml").decode())


def installs_on(wheel: str, platform: str, python: str) -> bool:
    """Whether a wheel installs on this Blender platform and Python (X.Y), by the tags in its name."""
    tags = WHEEL_NAME.fullmatch(wheel.rsplit("/", 1)[-1])
    assert tags, wheel
    if not any(tag.endswith(WHEEL_PLATFORMS[platform]) for tag in tags["platform"].split(".")):
        return False
    wanted = "cp" + python.replace(".", "")
    for python_tag in tags["python"].split("."):
        if python_tag == wanted and tags["abi"] in (wanted, "none"):
            return True
        if tags["abi"] == "abi3" and python_tag.startswith("cp3") and int(python_tag[3:]) <= int(wanted[3:]):
            return True
    return False


def blender_extension_modules() -> list:
    """`blender_ext.py` of every Blender the tests have installed, as a module: Blender's own rules."""
    modules = []
    for index, path in enumerate(load_build().validators()):
        spec = importlib.util.spec_from_file_location(f"blender_ext_{index}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append((path, module))
    return modules


def test_every_supported_blenders_python_is_covered_on_every_platform(addon_zip):
    """The check that refused the zip on 5.1 and later: Blender reads the Pythons an extension supports
    from its wheels' tags, and each platform needs one pyzmq wheel that installs on each Blender's Python."""
    build = load_build()
    manifest = manifest_of(addon_zip)
    assert manifest["blender_version_min"] == f"{min(build.BLENDER_PYTHONS, key=_version)}.0"
    assert "blender_version_max" not in manifest, "no Blender above the supported ones is known to refuse it"
    checked = blender_extension_modules()
    assert checked, "the Blender tests' venvs bring blender_ext.py"
    for path, blender_ext in checked:
        supported = blender_ext.python_versions_from_wheels(manifest["wheels"])
        assert not isinstance(supported, str), supported
        for series, python in build.BLENDER_PYTHONS.items():
            major, minor = map(int, python.split("."))
            assert (major, minor) in supported or (major,) in supported, (path, series, python, supported)
    for platform in manifest["platforms"]:
        for series, python in build.BLENDER_PYTHONS.items():
            fitting = [wheel for wheel in manifest["wheels"] if installs_on(wheel, platform, python)]
            assert len(fitting) == 1, (series, platform, python, fitting)


def test_the_coverage_check_fails_on_the_manifest_blender_5_2_refused(tmp_path):
    """cp311 and cp312-abi3 wheels side by side: Blender counts that as 3.11 only."""
    wheels = [
        f"./wheels/pyzmq-27.3.0-{tags}-{platform}.whl"
        for tags in ("cp311-cp311", "cp312-abi3")
        for platform in ("macosx_10_15_universal2", "manylinux_2_28_x86_64", "win_amd64")
    ]
    for _, blender_ext in blender_extension_modules():
        assert blender_ext.python_versions_from_wheels(wheels) == {(3, 11)}
    assert installs_on(wheels[1], "linux-x64", "3.13") is False
    assert installs_on(wheels[4], "linux-x64", "3.13") and not installs_on(wheels[4], "linux-x64", "3.11")


def _version(series: str) -> tuple[int, ...]:
    return tuple(map(int, series.split(".")))


def test_the_release_zip_holds_the_addon_shared_and_pyzmq_for_each_platform_and_python(addon_zip):
    archive = addon_zip
    manifest_template = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())
    assert archive.name == f"{manifest_template['id']}-{manifest_template['version']}.zip"

    with zipfile.ZipFile(archive) as zip_file:
        names = set(zip_file.namelist())
    manifest = manifest_of(archive)
    assert {"__init__.py", "tick.py", "ui/panels.py", "shared/__init__.py", "shared/client.py"} <= names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]

    assert manifest["schema_version"] == "1.0.0" and manifest["blender_version_min"] == "4.2.0"
    assert set(manifest["permissions"]) == {"network", "files"}
    assert sorted(manifest["platforms"]) == sorted(PLATFORMS)
    wheels = [wheel.removeprefix("./") for wheel in manifest["wheels"]]
    assert set(wheels) <= names
    for tag in PLATFORMS.values():
        for python in ("-cp311-cp311-", "-cp313-cp313-"):
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


def test_without_a_blender_validator_the_build_warns_and_succeeds(tmp_path, monkeypatch, capsys):
    build = load_build()
    monkeypatch.setattr(build, "validators", list)  # as on a fresh clone: no bpy wheel anywhere
    assert build.main(["--platform", "current", "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out.strip().endswith(".zip") and Path(out.strip()).is_file()
    assert err.startswith("warning:") and "validator" in err


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


def test_the_zip_carries_the_sidecars_own_wheel_which_the_manifest_leaves_out(addon_zip):
    """Install the Sidecar installs it into an environment of its own; were the manifest to list it, Blender
    would install it (and torch) into its own Python."""
    with zipfile.ZipFile(addon_zip) as zip_file:
        (wheel,) = [name for name in zip_file.namelist() if name.startswith("sidecar-wheel/")]
        assert re.fullmatch(r"sidecar-wheel/triposr_sidecar-0\.1\.0-py3-none-any\.whl", wheel), wheel
        with zipfile.ZipFile(zip_file.open(wheel)) as sidecar_wheel:
            files = set(sidecar_wheel.namelist())
            metadata = sidecar_wheel.read("triposr_sidecar-0.1.0.dist-info/METADATA").decode()
    assert {"sidecar/__main__.py", "sidecar/commands/doctor.py", "shared/protocol.py"} <= files
    assert "sidecar/triposr/official_config.yaml" in files
    assert not [name for name in files if name.startswith("tests/") or name.endswith(".pyc")]
    assert "Requires-Dist: torch" in metadata and "Requires-Dist: pyzmq" in metadata
    assert not [name for name in manifest_of(addon_zip)["wheels"] if "sidecar" in name]


def test_building_the_sidecars_wheel_leaves_the_tree_as_it_was(tmp_path):
    """setuptools writes build/lib and an egg-info into the project it builds: into a copy, here."""
    made_by_setuptools = [ROOT / "build" / "lib", ROOT / "triposr_sidecar.egg-info"]

    def state() -> dict:
        return {str(path): path.stat().st_mtime_ns for path in made_by_setuptools if path.exists()}

    before = state()
    load_build().sidecar_wheel(tmp_path)
    assert state() == before
