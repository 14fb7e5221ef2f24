from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
from blender_env import BPY_RELEASES, Blender, ensure_bpy

import shared
import shared.client
import shared.protocol

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "triposr"


def _addon_package() -> None:
    """The add-on's modules that need no bpy, importable as `triposr_addon` with the repository's `shared/`
    standing in for the copy build.py vendors, so plain pytest covers them."""
    package = types.ModuleType("triposr_addon")
    package.__path__ = [str(ROOT / "blender_addon")]
    sys.modules["triposr_addon"] = package
    sys.modules["triposr_addon.shared"] = shared
    sys.modules["triposr_addon.shared.client"] = shared.client
    sys.modules["triposr_addon.shared.protocol"] = shared.protocol


_addon_package()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--blender",
        default="4.5",
        help=f"comma-separated Blender series for the tests run inside Blender ({', '.join(BPY_RELEASES)})",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "blender" in metafunc.fixturenames:
        series = [s.strip() for s in metafunc.config.getoption("--blender").split(",") if s.strip()]
        unknown = set(series) - set(BPY_RELEASES)
        if unknown:
            raise pytest.UsageError(f"--blender: unknown series {sorted(unknown)}")
        metafunc.parametrize("blender", series, indirect=True, scope="session")


@pytest.fixture(scope="session")
def blender(request: pytest.FixtureRequest) -> Blender:
    return Blender(request.param, ensure_bpy(request.param))


@pytest.fixture(scope="session")
def tiny_weights() -> Path:
    return FIXTURES / "tiny"


@pytest.fixture(scope="session")
def golden(tiny_weights: Path):
    import numpy as np

    return dict(np.load(tiny_weights / "golden.npz"))


@pytest.fixture(scope="session")
def tiny_model(tiny_weights: Path):
    from sidecar.triposr import load_model

    return load_model(str(tiny_weights), device="cpu")


@pytest.fixture(scope="session")
def blender_validator(request: pytest.FixtureRequest) -> None:
    """A `bpy` wheel at hand, whose `blender_ext.py` build.py validates with: the first --blender series'."""
    ensure_bpy(request.config.getoption("--blender").split(",")[0].strip())


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory: pytest.TempPathFactory, blender_validator: None) -> Path:
    """The extension zip that users get, built by build.py for every platform, so that a manifest one
    Blender rejects fails here."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, str(ROOT / "build.py"), "--out", str(out)], check=True, timeout=600)
    (archive,) = out.glob("triposr-*.zip")
    return archive
