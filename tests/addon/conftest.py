"""Fixtures for the add-on's tests: its modules without bpy, the zip build.py makes, a real sidecar.

The modules that need no bpy are imported from `blender_addon/` as the package `triposr_addon`, with the
repository's `shared/` standing in for the copy build.py vendors, so plain pytest covers them.
"""

from __future__ import annotations

import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from addon_helpers import ROOT, TINY
from blender_env import ensure_bpy
from sidecar_process import Launcher, Sidecar

import shared
import shared.client
import shared.protocol


def _addon_package() -> None:
    package = types.ModuleType("triposr_addon")
    package.__path__ = [str(ROOT / "blender_addon")]
    sys.modules["triposr_addon"] = package
    sys.modules["triposr_addon.shared"] = shared
    sys.modules["triposr_addon.shared.client"] = shared.client
    sys.modules["triposr_addon.shared.protocol"] = shared.protocol


_addon_package()


@pytest.fixture
def running_sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    launcher = Launcher(tmp_path / "sidecar", TINY)
    yield launcher.start()
    launcher.stop_all()


@pytest.fixture(scope="session")
def blender_validator(request: pytest.FixtureRequest) -> None:
    """A `bpy` wheel at hand, whose `blender_ext.py` build.py validates with: the first --blender series'."""
    ensure_bpy(request.config.getoption("--blender").split(",")[0].strip())


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory: pytest.TempPathFactory, blender_validator: None) -> Path:
    """The extension zip, built by build.py for this machine, as a user would install it."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, str(ROOT / "build.py"), "--platform", "current", "--out", str(out)],
        check=True,
        timeout=600,
    )
    (archive,) = out.glob("triposr-*.zip")
    return archive
