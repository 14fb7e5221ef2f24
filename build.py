"""Package the Blender extension: `dist/<id>-<version>.zip`.

The zip holds the add-on (`blender_addon/`), the protocol package `shared/` vendored inside it as a
subpackage, and the pyzmq wheels Blender installs for it: one per platform and per Python of a supported
Blender (3.11 for 4.2 to 5.0, 3.13 for 5.1 and 5.2). Wheels are cached under `build/wheels/`, so only the
first build downloads. It also holds the sidecar's own wheel, `sidecar-wheel/`, which the add-on's Install
puts into an environment of its own; the manifest does not list it, or Blender would install it into its
own Python. The result is checked with Blender's own validator, `blender_ext.py` from the `bpy`
wheel of every Blender the tests have installed; without one, the build says so and still succeeds.

    python build.py                      # macOS arm64, Linux x64 and Windows x64
    python build.py --platform current   # only this machine's wheels (what the tests use)
"""

from __future__ import annotations

import argparse
import glob
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent
ADDON = ROOT / "blender_addon"
SHARED = ROOT / "shared"
WHEEL_CACHE = ROOT / "build" / "wheels"

# Blender decides which Pythons an extension supports from its wheels' tags, and it counts a stable-ABI wheel
# (pyzmq 27's cp312-abi3) as no particular 3.x once a cp311 wheel is listed beside it: 5.1 and later then
# refuse the extension. 26.4 is the newest pyzmq that publishes wheels tagged for each CPython, 3.13 included.
PYZMQ_VERSION = "26.4.0"
# Blender platform name -> the wheel platform tag pip is asked for.
PLATFORMS = {
    "macos-arm64": "macosx_11_0_arm64",
    "linux-x64": "manylinux_2_28_x86_64",
    "windows-x64": "win_amd64",
}
# The Python of each supported Blender series (blender_manifest.toml's blender_version_min is the first).
BLENDER_PYTHONS = {
    "4.2": "3.11",
    "4.3": "3.11",
    "4.4": "3.11",
    "4.5": "3.11",
    "5.0": "3.11",
    "5.1": "3.13",
    "5.2": "3.13",
}
PYTHONS = sorted(set(BLENDER_PYTHONS.values()))
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
VALIDATORS = "lib/python3*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"


class BuildError(Exception):
    pass


@dataclass(frozen=True)
class Target:
    platform: str  # Blender's name, as the manifest lists it
    wheel_tag: str | None  # None: whatever pip picks for this machine


def current_target() -> Target:
    system = {"darwin": "macos"}.get(platform.system().lower(), platform.system().lower())
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    return Target(f"{system}-{machine}", None)


def targets(names: list[str]) -> list[Target]:
    if names == ["current"]:
        return [current_target()]
    chosen = list(PLATFORMS) if names == ["all"] else names
    unknown = sorted(set(chosen) - set(PLATFORMS))
    if unknown:
        raise BuildError(f"unknown platform(s) {unknown}: use all, current or some of {sorted(PLATFORMS)}")
    return [Target(name, PLATFORMS[name]) for name in chosen]


def wheel(target: Target, python_version: str) -> Path:
    """pyzmq's wheel for one platform and Python, downloaded once into `build/wheels/`."""
    cpython = "cp" + python_version.replace(".", "")
    folder = WHEEL_CACHE / f"{target.platform}-{cpython}"
    # pip also takes a stable-ABI wheel for `--abi cpXY`; only one tagged for this very Python will do.
    pattern = f"pyzmq-{PYZMQ_VERSION}-{cpython}-{cpython}-*.whl"
    cached = sorted(folder.glob(pattern))
    if not cached:
        command = [sys.executable, "-m", "pip", "download", f"pyzmq=={PYZMQ_VERSION}", "--no-deps"]
        command += ["--only-binary=:all:"]
        command += ["--python-version", python_version, "--implementation", "cp", "--abi", cpython]
        if target.wheel_tag:
            command += ["--platform", target.wheel_tag]
        process = subprocess.run([*command, "--dest", str(folder)], capture_output=True, text=True)
        cached = sorted(folder.glob(pattern))
        if process.returncode != 0 or len(cached) != 1:
            raise BuildError(
                f"could not download a pyzmq {PYZMQ_VERSION} wheel tagged {cpython} for {target.platform}:\n"
                f"{process.stderr}"
            )
    return cached[0]


def sidecar_wheel(destination: Path) -> Path:
    """The sidecar's wheel (`sidecar/` and `shared/`), built from a copy of the project so that the tree
    gets no build/ or egg-info of setuptools'."""
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder) / "project"
        project.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, project / name)
        for package in ("sidecar", "shared"):
            shutil.copytree(ROOT / package, project / package, ignore=IGNORED)
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet"]
        command += ["--disable-pip-version-check", "--wheel-dir", str(destination), str(project)]
        process = subprocess.run(command, capture_output=True, text=True)
        built = sorted(destination.glob("*.whl"))
        if process.returncode != 0 or len(built) != 1:
            raise BuildError(f"could not build the sidecar's wheel:\n{process.stdout}{process.stderr}")
    return built[0]


def manifest_text(template: str, platforms: list[str], wheels: list[str]) -> str:
    """The template with `platforms` and `wheels` added before its first table (JSON arrays are TOML)."""
    lines = template.splitlines()
    first_table = next(i for i, line in enumerate(lines) if line.startswith("["))
    added = [f"platforms = {json.dumps(platforms)}", f"wheels = {json.dumps(wheels, indent=2)}", ""]
    return "\n".join([*lines[:first_table], *added, *lines[first_table:]]) + "\n"


def stage_sources(destination: Path) -> Path:
    """The add-on with `shared/` as its subpackage, laid out in `destination` as it goes into the zip."""
    shutil.copytree(ADDON, destination, ignore=IGNORED)
    shutil.copytree(SHARED, destination / "shared", ignore=IGNORED)
    return destination


def add_wheels(staged: Path, wheels: list[Path], platforms: list[str]) -> None:
    (staged / "wheels").mkdir()
    for path in wheels:
        shutil.copy2(path, staged / "wheels" / path.name)
    template = (ADDON / "blender_manifest.toml").read_text(encoding="utf-8")
    manifest = manifest_text(template, platforms, [f"./wheels/{path.name}" for path in wheels])
    (staged / "blender_manifest.toml").write_text(manifest, encoding="utf-8")


def write_zip(source: Path, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".zip.part")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(source.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(source).as_posix())
    temporary.replace(path)


def validators() -> list[Path]:
    """Blender's `blender_ext.py` from every `bpy` wheel at hand: the test venvs', or this Python's."""
    found = [Path(p) for p in sorted(glob.glob(str(ROOT / ".venv-blender-*" / VALIDATORS)))]
    found += [Path(p) for p in sorted(glob.glob(str(Path(sys.prefix) / VALIDATORS)))]
    return found


def validate(archive: Path, validator_paths: list[Path]) -> None:
    if not validator_paths:  # a fresh clone has none: the zip still installs, and the tests check it
        print(
            f"warning: {archive.name} was not checked with Blender's validator, which ships in the bpy "
            "wheel: run the Blender tests once (they make `.venv-blender-<series>`) or `pip install bpy` "
            "into this Python to have it checked.",
            file=sys.stderr,
        )
        return
    for validator in validator_paths:
        process = subprocess.run(
            [sys.executable, str(validator), "validate", str(archive)], capture_output=True, text=True
        )
        if process.returncode != 0 or not process.stdout.startswith("Success"):
            raise BuildError(f"{validator} rejects {archive.name}:\n{process.stdout}{process.stderr}")


def build(platform_names: list[str], out: Path, check: bool = True) -> Path:
    manifest = tomllib.loads((ADDON / "blender_manifest.toml").read_text(encoding="utf-8"))
    chosen = targets(platform_names)
    wheels = [wheel(target, version) for target in chosen for version in PYTHONS]
    archive = out / f"{manifest['id']}-{manifest['version']}.zip"
    with tempfile.TemporaryDirectory() as folder:
        staged = stage_sources(Path(folder) / manifest["id"])
        add_wheels(staged, wheels, [target.platform for target in chosen])
        sidecar_wheel(staged / "sidecar-wheel")
        write_zip(staged, archive)
    if check:
        validate(archive, validators())
    return archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--platform",
        nargs="+",
        default=["all"],
        metavar="NAME",
        help=f"all (default), current, or some of: {', '.join(PLATFORMS)}",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="folder for the zip (default: dist)")
    parser.add_argument("--no-validate", action="store_true", help="skip Blender's validator")
    args = parser.parse_args(argv)
    try:
        archive = build(args.platform, args.out, check=not args.no_validate)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(archive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
