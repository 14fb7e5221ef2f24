"""A running sidecar for the add-on's tests; the zip build.py makes is a fixture of tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from addon_helpers import TINY
from sidecar_process import Launcher, Sidecar


@pytest.fixture
def running_sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    launcher = Launcher(tmp_path / "sidecar", TINY)
    yield launcher.start()
    launcher.stop_all()
