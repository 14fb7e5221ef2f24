"""The client the Blender add-on and the CLI share: submit jobs, poll for their events, never block for long.

One DEALER socket, used from one thread. `poll()` returns events as they arrive and reports a job whose
sidecar has gone silent for `heartbeat_timeout` seconds as an `error` with code `sidecar_lost`, once.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

import zmq

from .protocol import (
    DEFAULT_ENDPOINT,
    ERROR_CODES,
    PROTOCOL_VERSION,
    TERMINAL_TYPES,
    ProtocolError,
    decode,
    encode,
    error_fields,
    is_job_id,
    new_job_id,
)

log = logging.getLogger(__name__)


@dataclass
class Event:
    type: str  # "accepted" | "progress" | "result" | "error" | "cancelled" | ...
    job: str | None
    header: dict  # the full decoded JSON header
    payload: bytes | None  # GLB bytes for a result delivered as bytes, else None


class SidecarError(Exception):
    """The sidecar refused a request, or did not answer it; `code` is one of protocol.ERROR_CODES."""

    def __init__(self, code: str, message: str, retryable: bool | None = None):
        super().__init__(message)
        self.code = code
        self.retryable = ERROR_CODES.get(code, False) if retryable is None else retryable


class SidecarUnavailable(SidecarError):
    """No answer within the time the caller allowed."""

    def __init__(self, message: str):
        super().__init__("sidecar_unavailable", message, retryable=True)


class SidecarClient:
    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        server_public_key: bytes | str | None = None,
        heartbeat_timeout: float = 15.0,
        client_pid: int | None = None,
    ):
        self.endpoint = endpoint
        self.heartbeat_timeout = heartbeat_timeout
        # The process this client speaks for (a Blender): named in every hello, so that a sidecar on this
        # machine that another process started stays up while it runs.
        self.client_pid = client_pid
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.linger = 0
        # Keep receiving while the caller does not poll (Blender busy for minutes): with a bound, the
        # sidecar's queue for us would fill up and drop events, a result among them.
        self._socket.rcvhwm = 0
        # A fixed routing id lets the sidecar keep routing job events to us across reconnects.
        self._socket.routing_id = uuid.uuid4().hex.encode()
        if server_public_key is not None:
            self._socket.curve_serverkey = _curve_key(server_public_key)
            self._socket.curve_publickey, self._socket.curve_secretkey = zmq.curve_keypair()
        self._socket.connect(endpoint)
        self._last_heard: dict[str, float] = {}  # active job -> monotonic time of its last event
        self._pending: deque[Event] = deque()  # job events that arrived while a blocking helper waited
        self._asked: set[str] = set()  # request ids of `ask`s whose reply `poll()` returns

    def __enter__(self) -> SidecarClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def active_jobs(self) -> set[str]:
        """Jobs submitted or fetched that have had no terminal event yet."""
        return set(self._last_heard)

    def hello(self, timeout: float = 2.0) -> dict:
        fields = {} if self.client_pid is None else {"client_pid": self.client_pid}
        return self._request("hello", timeout, **fields)

    def status(self, timeout: float = 2.0) -> dict:
        return self._request("status", timeout)

    def list_results(self, timeout: float = 2.0, limit: int = 50) -> list[dict]:
        return self._request("list", timeout, limit=limit)["jobs"]

    def list_jobs(self, timeout: float = 2.0, limit: int = 50) -> dict:
        """The whole `list` reply: `jobs`, newest first, and `total_cost`, all jobs' cost in US dollars."""
        return self._request("list", timeout, limit=limit)

    def estimate(self, params: dict | None = None, count: int = 1, timeout: float = 5.0) -> dict:
        """What a job (or a batch of `count` like it) would take: time and memory here, time and cost on
        Replicate, each with how it was estimated (docs/protocol.md, `estimate`)."""
        return self._request("estimate", timeout, params=dict(params or {}), count=count)

    def ask(self, message_type: str, **fields: Any) -> str:
        """Send a request without waiting: its reply, with the request_id returned, comes from `poll()`."""
        request_id = uuid.uuid4().hex
        self._send(encode(message_type, request_id=request_id, **fields))
        self._asked.add(request_id)
        return request_id

    def shutdown(self, timeout: float = 2.0) -> None:
        self._request("shutdown", timeout)

    def submit(
        self,
        image: bytes,
        params: dict | None = None,
        *,
        job_id: str | None = None,
        filename: str | None = None,
        deliver: str = "bytes",
    ) -> str:
        """Send a job and return its id; its events come from `poll()`. Sending the same id again is safe."""
        job = job_id or new_job_id()
        if not is_job_id(job):
            raise ValueError(f"job_id must be a canonical UUID string, not {job!r}")
        fields: dict[str, Any] = {"params": dict(params or {}), "deliver": deliver}
        if filename is not None:
            fields["filename"] = filename
        self._send(encode("submit", job, payloads={"image": image}, **fields))
        self._last_heard[job] = time.monotonic()
        return job

    def cancel(self, job_id: str) -> None:
        """Ask for the job to stop; its terminal event (usually `cancelled`; `error` `unknown_job` for an
        id the sidecar never had) comes from `poll()`, also for a job this client did not submit."""
        self._send(encode("cancel", job_id))
        self._last_heard.setdefault(job_id, time.monotonic())

    def fetch(self, job_id: str, deliver: str = "bytes") -> None:
        """Ask for a job's outcome again: a past result, error or cancellation, or a running job's events."""
        self._send(encode("fetch", job_id, deliver=deliver))
        self._last_heard[job_id] = time.monotonic()

    def poll(self, timeout: float = 0.0) -> list[Event]:
        """The events that have arrived, waiting at most `timeout` seconds for the first one."""
        deadline = time.monotonic() + max(timeout, 0.0)
        events = list(self._pending)
        self._pending.clear()
        while True:
            events += self._drain()
            events += self._lost_jobs()
            now = time.monotonic()
            if events or now >= deadline:
                return events
            wake = min([deadline, *(heard + self.heartbeat_timeout for heard in self._last_heard.values())])
            self._socket.poll(math.ceil((wake - now) * 1000))

    def close(self) -> None:
        self._socket.close(linger=0)
        self._context.term()

    def _send(self, frames: list) -> None:
        try:
            self._socket.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again as exc:
            raise SidecarUnavailable(
                f"The sidecar at {self.endpoint} is not taking messages: too many are waiting to be sent."
            ) from exc

    def _request(self, message_type: str, timeout: float, **fields: Any) -> dict:
        """Send a request and wait for its reply; job events that arrive meanwhile wait for `poll()`."""
        request_id = uuid.uuid4().hex
        self._send(encode(message_type, request_id=request_id, **fields))
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            if not self._socket.poll(math.ceil(remaining * 1000)):
                break
            reply = None
            for event in self._receive():  # events received with the reply, after it too, are kept
                if event.header.get("request_id") == request_id:
                    reply = event
                elif self._keep(event):
                    self._pending.append(event)
            if reply is not None and reply.type == "error":
                raise SidecarError(reply.header.get("code", "internal"), reply.header.get("message", ""))
            if reply is not None:
                return reply.header
        raise SidecarUnavailable(
            f"No answer from the sidecar at {self.endpoint} within {timeout:g} s. "
            "Is it running, and is this the right address?"
        )

    def _drain(self) -> list[Event]:
        return [event for event in self._receive() if self._keep(event)]

    def _receive(self) -> list[Event]:
        """Every message waiting on the socket, without blocking; malformed ones are logged and dropped."""
        events: list[Event] = []
        while True:
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return events
            try:
                message = decode(frames, max_header_bytes=None)
            except ProtocolError as exc:
                log.warning("Dropped a malformed message from the sidecar: %s", exc)
                continue
            events.append(Event(message.type, message.job, message.header, message.payloads.get("glb")))

    def _keep(self, event: Event) -> bool:
        """Note the job's liveness; drop replies no request waits for, and events of jobs not tracked."""
        if "request_id" in event.header:
            asked = event.header["request_id"] in self._asked
            self._asked.discard(event.header["request_id"])
            return asked
        if event.job is None:
            return True
        if event.job not in self._last_heard:
            return False
        if event.type in TERMINAL_TYPES:
            del self._last_heard[event.job]
        else:
            self._last_heard[event.job] = time.monotonic()
        return True

    def _lost_jobs(self) -> list[Event]:
        silent_since = time.monotonic() - self.heartbeat_timeout
        lost = [job for job, heard in self._last_heard.items() if heard <= silent_since]
        events = []
        for job in lost:
            del self._last_heard[job]
            message = (
                f"The sidecar at {self.endpoint} has sent nothing about this job for "
                f"{self.heartbeat_timeout:g} s; it has probably stopped. Start it again and resubmit."
            )
            header = {
                "v": PROTOCOL_VERSION,
                "type": "error",
                "job": job,
                **error_fields("sidecar_lost", message),
            }
            events.append(Event("error", job, header, None))
        return events


def _curve_key(key: bytes | str) -> bytes:
    """A CurveZMQ public key in its 40-character Z85 text form."""
    key = key.encode("ascii") if isinstance(key, str) else key
    if len(key) != 40:
        raise ValueError(
            "server_public_key must be the 40-character Z85 key that `triposr-sidecar keygen` printed"
        )
    return key
