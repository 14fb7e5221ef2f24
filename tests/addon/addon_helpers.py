"""What the add-on's tests share: paths, test images, and build.py as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "triposr" / "tiny"
# The interpreter that has the sidecar and torch: the project's own venv, which runs the tests.
SIDECAR_PYTHON = Path(sys.executable)


def make_images(folder: Path, count: int, corrupt: int | None = None) -> list[Path]:
    """`count` different PNGs made from the fixture's input image; `corrupt` (an index) is a truncated one."""
    folder.mkdir(parents=True, exist_ok=True)
    source = Image.open(TINY / "input.png").convert("RGBA")
    paths = []
    for index in range(count):
        variant = source.rotate(index * 7, resample=Image.BILINEAR)
        variant = ImageOps.mirror(variant) if index % 2 else variant
        path = folder / f"object_{index + 1}.png"
        variant.save(path)
        if index == corrupt:
            path.write_bytes(path.read_bytes()[:200])
        paths.append(path)
    return paths


def assert_panels_drew_cleanly(report: dict, states: set[str]) -> None:
    """The script drew the panels in each of `states`, and Blender complained of nothing."""
    assert states <= set(report["drawn"]), f"states drawn: {sorted(report['drawn'])}"
    for state, complaints in report["drawn"].items():
        assert complaints == [], f"drawing the panels while {state}: {complaints}"


def load_build():
    """build.py as a module."""
    spec = importlib.util.spec_from_file_location("build_script", ROOT / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module
