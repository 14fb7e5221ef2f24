"""Fixtures for the Replicate backend: a fake Replicate on loopback, and real sidecars pointed at it.

The sidecars are real `serve` processes (tests/sidecar_process.py) whose real `replicate` client finds the
fake through REPLICATE_BASE_URL. The jobs are driven with tests/service_harness.py, and the token test in
Blender installs the add-on zip from tests/conftest.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_replicate import TOKEN, FakeReplicate
from replicate_harness import EXTRA_MODELS, SIDECAR_ARGS, start_sidecar
from sidecar_process import Launcher, Sidecar

from shared.client import SidecarClient


@pytest.fixture(scope="session")
def fake_replicate() -> Iterator[FakeReplicate]:
    fake = FakeReplicate().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(fake_replicate: FakeReplicate) -> FakeReplicate:
    """The fake, having forgotten earlier tests: each test sets its behaviour."""
    fake_replicate.reset()
    return fake_replicate


@pytest.fixture(scope="session")
def cloud_launcher(tmp_path_factory: pytest.TempPathFactory, tiny_weights: Path) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path_factory.mktemp("replicate"), tiny_weights)
    yield launcher
    launcher.stop_all()


@pytest.fixture
def launcher(tmp_path: Path, tiny_weights: Path) -> Iterator[Launcher]:
    """For a test that needs a sidecar of its own (other settings, or one a test changes for good)."""
    launcher = Launcher(tmp_path, tiny_weights)
    yield launcher
    launcher.stop_all()


@pytest.fixture(scope="session")
def cloud_sidecar(cloud_launcher: Launcher, fake_replicate: FakeReplicate) -> Sidecar:
    """A sidecar with a token, the fake as Replicate, and one more model from a file."""
    models = cloud_launcher.folder / "models.json"
    models.write_text(json.dumps(EXTRA_MODELS))
    return start_sidecar(
        cloud_launcher, fake_replicate.url, TOKEN, *SIDECAR_ARGS, "--replicate-models", str(models)
    )


@pytest.fixture
def client(cloud_sidecar: Sidecar) -> Iterator[SidecarClient]:
    with cloud_sidecar.client() as client:
        yield client


@pytest.fixture(scope="session")
def image(tiny_weights: Path) -> bytes:
    return (tiny_weights / "input.png").read_bytes()
