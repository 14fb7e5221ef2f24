"""Real sidecar processes on loopback TCP for the tests: `python -m sidecar serve` with the tiny model."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.client import SidecarClient, SidecarUnavailable

START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Sidecar:
    process: subprocess.Popen
    endpoint: str
    data_dir: Path
    log_path: Path

    def client(self, **options) -> SidecarClient:
        return SidecarClient(self.endpoint, **options)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, **client_options) -> dict:
        """Hello answered; fails with the sidecar's log if it exits or never answers."""
        deadline = time.monotonic() + START_TIMEOUT
        with self.client(**client_options) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(f"the sidecar exited with {self.process.returncode}:\n{self.log()}")
                try:
                    return client.hello(timeout=0.5)
                except SidecarUnavailable:
                    continue
        pytest.fail(f"the sidecar did not answer hello within {START_TIMEOUT} s:\n{self.log()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


class Launcher:
    """Starts sidecar processes for one test or module and kills whatever is still running at its end."""

    def __init__(self, folder: Path, weights: Path):
        self.folder = folder
        self.weights = weights
        self.started: list[Sidecar] = []

    def spawn(
        self,
        *args: str,
        data_dir: Path | None = None,
        endpoint: str | None = None,
        weights: Path | None = None,
        max_file_bytes: int | None = None,
    ) -> Sidecar:
        """A sidecar process, not yet known to be ready; `max_file_bytes` limits the size of every file it
        writes, as a full disk would (RLIMIT_FSIZE: writing further fails with EFBIG)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        endpoint = endpoint or f"tcp://127.0.0.1:{free_port()}"
        data_dir = data_dir or self.folder / f"data-{len(self.started)}"
        log_path = self.folder / f"sidecar-{len(self.started)}.log"
        command = [
            sys.executable, "-m", "sidecar", "serve", "--bind", endpoint,
            "--weights", str(weights or self.weights), "--device", "cpu", "--data-dir", str(data_dir), *args,
        ]  # fmt: skip
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_file_size_limit(max_file_bytes)
            )
        sidecar = Sidecar(process, endpoint, data_dir, log_path)
        self.started.append(sidecar)
        return sidecar

    def start(self, *args: str, **options) -> Sidecar:
        sidecar = self.spawn(*args, **options)
        sidecar.wait_ready()
        return sidecar

    def stop_all(self) -> None:
        for sidecar in self.started:
            sidecar.stop()


def _file_size_limit(max_bytes: int | None):
    if max_bytes is None:
        return None

    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return limit
