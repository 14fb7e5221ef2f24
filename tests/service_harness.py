"""Helpers around the shared client for the service tests, and a raw DEALER socket."""

from __future__ import annotations

import io
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import zmq
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from shared.client import Event, SidecarClient
from shared.protocol import TERMINAL_TYPES, Message, decode

JOB_TIMEOUT = 60.0
# Small enough to take a fraction of a second with the tiny model.
# What a local job with the default parameters goes through: floating pieces dropped, vertex colours.
DEFAULT_STAGES = {"preprocess", "encode", "density", "cleanup", "colour", "export"}
QUICK = {"resolution": 32}
# Long enough to cancel or kill mid-extraction: 256^3 points in chunks of 8192 take many seconds here.
LONG = {"resolution": 256, "chunk_size": 8192, "sparse": False}


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
    """A bare DEALER socket with ZeroMQ's default options, for the messages the client would never send and
    the clients that do not read."""

    def __init__(self, endpoint: str, routing_id: bytes | None = None):
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.linger = 0
        if routing_id is not None:
            self.socket.routing_id = routing_id
        self.socket.connect(endpoint)

    def send(self, *frames: bytes) -> None:
        self.socket.send_multipart(frames)

    def receive(self, timeout: float = 10.0) -> Message:
        assert self.socket.poll(timeout * 1000), f"no reply within {timeout} s"
        return decode(self.socket.recv_multipart(), max_header_bytes=None)

    def close(self) -> None:
        self.socket.close()
        self.context.term()
