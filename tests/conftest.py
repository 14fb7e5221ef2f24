from __future__ import annotations

from pathlib import Path

import pytest
from blender_env import BPY_RELEASES, Blender, ensure_bpy

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "triposr"


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
