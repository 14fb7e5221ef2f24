"""Fixtures that start real sidecar processes: one per module (options from its `SIDECAR_ARGS`), or per test.

The processes come from `tests/sidecar_process.py`, the helpers around them from `service_harness.py`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from service_harness import RawPeer
from sidecar_process import Launcher, Sidecar

from shared.client import SidecarClient


@pytest.fixture
def launcher(tmp_path: Path, tiny_weights: Path) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path, tiny_weights)
    yield launcher
    launcher.stop_all()


@pytest.fixture
def stand_in() -> Iterator[Callable[[], subprocess.Popen]]:
    """Starts processes that stand in for Blenders: each runs until the test kills it, or the test ends."""
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        started.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]))
        return started[-1]

    yield start
    for process in started:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def sidecar(request: pytest.FixtureRequest, tmp_path_factory, tiny_weights: Path) -> Iterator[Sidecar]:
    launcher = Launcher(tmp_path_factory.mktemp("sidecar"), tiny_weights)
    try:
        yield launcher.start(*getattr(request.module, "SIDECAR_ARGS", ()))
    finally:
        launcher.stop_all()


@pytest.fixture
def client(sidecar: Sidecar) -> Iterator[SidecarClient]:
    with sidecar.client() as client:
        yield client


@pytest.fixture(scope="session")
def image(tiny_weights: Path) -> bytes:
    return (tiny_weights / "input.png").read_bytes()


@pytest.fixture
def raw_peer(sidecar: Sidecar) -> Iterator[RawPeer]:
    peer = RawPeer(sidecar.endpoint)
    yield peer
    peer.close()
