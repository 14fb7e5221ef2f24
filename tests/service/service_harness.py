"""Real sidecar processes on loopback TCP, helpers around the shared client, and a raw DEALER socket."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from shared.client import Event, SidecarClient, SidecarUnavailable
from shared.protocol import TERMINAL_TYPES, Message, decode

START_TIMEOUT = 60.0
JOB_TIMEOUT = 60.0
# Small enough to take a fraction of a second with the tiny model.
QUICK = {"resolution": 32}
# Long enough to cancel or kill mid-extraction: 256^3 points in chunks of 8192 take many seconds here.
LONG = {"resolution": 256, "chunk_size": 8192, "sparse": False}


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

    def spawn(self, *args: str, data_dir: Path | None = None, endpoint: str | None = None) -> Sidecar:
        """A sidecar process, not yet known to be ready."""
        endpoint = endpoint or f"tcp://127.0.0.1:{free_port()}"
        data_dir = data_dir or self.folder / f"data-{len(self.started)}"
        log_path = self.folder / f"sidecar-{len(self.started)}.log"
        command = [
            sys.executable, "-m", "sidecar", "serve", "--bind", endpoint, "--weights", str(self.weights),
            "--device", "cpu", "--data-dir", str(data_dir), *args,
        ]  # fmt: skip
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
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


def unique_png(image: bytes) -> bytes:
    """The same pixels with a fresh text chunk: new image bytes, so that the store cannot answer for them."""
    picture = Image.open(io.BytesIO(image))
    text = PngInfo()
    text.add_text("nonce", uuid.uuid4().hex)
    out = io.BytesIO()
    picture.save(out, format="PNG", pnginfo=text)
    return out.getvalue()


@dataclass
class Received:
    event: Event
    at: float  # monotonic arrival time


class EventLog:
    """Everything one client receives, per job, with arrival times."""

    def __init__(self, client: SidecarClient):
        self.client = client
        self.by_job: dict[str | None, list[Received]] = defaultdict(list)

    def events(self, job: str) -> list[Event]:
        return [received.event for received in self.by_job[job]]

    def terminal(self, job: str) -> Received | None:
        received = self.by_job[job]
        return received[-1] if received and received[-1].event.type in TERMINAL_TYPES else None

    def wait(self, done: Callable[[], bool], what: str, timeout: float = JOB_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"{what} took over {timeout} s: {dict(self.by_job)}"
            for event in self.client.poll(timeout=0.5):
                self.by_job[event.job].append(Received(event, time.monotonic()))

    def until_done(self, *jobs: str, timeout: float = JOB_TIMEOUT) -> None:
        self.wait(lambda: all(self.terminal(job) for job in jobs), f"the end of {jobs}", timeout)

    def until_stage(self, job: str, stage: str) -> None:
        def reached() -> bool:
            assert self.terminal(job) is None, f"{job} ended before {stage}: {self.events(job)[-1].header}"
            return any(event.header.get("stage") == stage for event in self.events(job))

        self.wait(reached, f"{stage} of {job}")


def run_job(client: SidecarClient, image: bytes, params: dict | None = None, **options) -> list[Event]:
    """Submit and wait: the job's events, its terminal event last."""
    job = client.submit(image, QUICK if params is None else params, **options)
    log = EventLog(client)
    log.until_done(job)
    return log.events(job)


class RawPeer:
    """A bare DEALER socket, for the messages the client would never send."""

    def __init__(self, endpoint: str):
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.linger = 0
        self.socket.connect(endpoint)

    def send(self, *frames: bytes) -> None:
        self.socket.send_multipart(frames)

    def receive(self, timeout: float = 10.0) -> Message:
        assert self.socket.poll(timeout * 1000), f"no reply within {timeout} s"
        return decode(self.socket.recv_multipart(), max_header_bytes=None)

    def close(self) -> None:
        self.socket.close()
        self.context.term()
