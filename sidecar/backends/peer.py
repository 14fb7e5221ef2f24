"""A peer: another sidecar (a studio's GPU machine, say) that runs jobs for this one, over CurveZMQ.

A ticket becomes a `local` job on the peer, sent with the shared client under the ticket's own job id, so that
the peer's store answers a job sent twice. Its progress is relayed, a cancel is passed on, and its GLB is the
outcome. A peer that sends nothing about the job for `timeout` seconds (it sends progress every
HEARTBEAT_SECONDS) has stopped answering: the job is lost to it (`BackendLost`) and runs elsewhere. So does a
job the peer refuses for its own state (full, stopping, without its model). A thread asks the peer `hello`
every few seconds, so that the scheduler knows whether it answers before sending it work.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from shared.client import Event, SidecarClient, SidecarError
from shared.protocol import HEARTBEAT_SECONDS, QUEUED

from ..clock import ProgressCallback
from ..jobs import BackendLost, JobCancelled, JobFailed, Ticket
from ..lanes import peer_lane
from .base import Outcome

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 6.0
# How often the peer is asked whether it answers.
PROBE_SECONDS = 2.0
# A job's events are read this often, so that a cancel is passed on within it.
POLL_SECONDS = 0.2
# What the peer refuses because of its own state, not the job's: the job runs elsewhere.
PEER_TROUBLES = frozenset(
    {"sidecar_lost", "queue_full", "shutting_down", "interrupted", "weights_unavailable", "model_unavailable",
     "storage_full"}
)  # fmt: skip


class PeerBackend:
    name = "peer"

    def __init__(self, endpoint: str, public_key: bytes | None, timeout: float = DEFAULT_TIMEOUT):
        self.endpoint = endpoint
        self.lane = peer_lane(endpoint)
        self._public_key = public_key
        self._timeout = timeout
        self.answering = False  # as the last `hello` (or job) found it
        self.device: str | None = None  # the peer's device, once it has answered
        self._prober = threading.Thread(target=self._probe, name=f"{self.lane}-probe", daemon=True)

    def prepare(self) -> None:
        if not self._prober.is_alive():
            self._prober.start()

    def describe(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "answering": self.answering, "device": self.device}

    def run(self, ticket: Ticket, report: ProgressCallback) -> Outcome:
        # A client for each job: one whose peer went silent must not deliver the job when the peer comes back.
        with self._client() as client:
            client.submit(
                ticket.image, ticket.params.on_backend("local"), job_id=ticket.job, filename=ticket.filename
            )
            try:
                result = self._follow(client, ticket, report)
            except JobCancelled:
                self._cancel(client, ticket.job)
                raise
            except BackendLost:
                # A peer only slow to answer must not go on with a job that now runs elsewhere.
                client.cancel(ticket.job)
                client.poll(timeout=POLL_SECONDS)  # time for the cancel to leave before the socket closes
                raise
        header = result.header
        return Outcome(
            glb=result.payload or b"",
            vertices=header["vertices"],
            faces=header["faces"],
            device=f"{header['device']} (peer {self.endpoint})",
            model=header["model"],
            stage_seconds=header["stage_seconds"],
            peak_rss_bytes=header.get("peak_rss_bytes"),
            peak_device_bytes=header.get("peak_device_bytes"),
            cost=header.get("cost"),
        )

    def _follow(self, client: SidecarClient, ticket: Ticket, report: ProgressCallback) -> Event:
        """The job's events until its end: progress is relayed; the result returned; the rest raised."""
        while True:
            ticket.raise_if_cancelled()
            for event in client.poll(timeout=POLL_SECONDS):
                if event.job != ticket.job:
                    continue
                header = event.header
                if event.type == "progress" and header.get("stage") != QUEUED:
                    report(header["stage"], header["fraction"])
                elif event.type == "result":
                    self.answering = True
                    return event
                elif event.type == "cancelled":
                    raise JobFailed("remote_error", f"The job was cancelled on the peer {self.endpoint}.")
                elif event.type == "error":
                    self._failed(header.get("code", "internal"), header.get("message", ""))

    def _failed(self, code: str, message: str) -> None:
        if code == "sidecar_lost":
            self.answering = False
            raise BackendLost(self.lane, f"stopped answering for {self._timeout:g} s")
        if code in PEER_TROUBLES:
            raise BackendLost(self.lane, f"could not take it ({code}: {message})")
        raise JobFailed(code, f"{message} (on the peer {self.endpoint})")

    def _cancel(self, client: SidecarClient, job: str) -> None:
        """Pass the cancel on, and wait (a while) for the peer to confirm, so that it stops working on it."""
        client.cancel(job)
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if any(event.job == job and event.type in ("cancelled", "error", "result")
                   for event in client.poll(timeout=POLL_SECONDS)):  # fmt: skip
                return
        log.warning("The peer %s did not confirm the cancel of job %s", self.endpoint, job)

    def _client(self) -> SidecarClient:
        key, timeout = self._public_key, self._timeout
        return SidecarClient(self.endpoint, server_public_key=key, heartbeat_timeout=timeout)

    def _probe(self) -> None:
        with self._client() as client:
            while True:
                try:
                    hello = client.hello(timeout=self._timeout)
                except SidecarError as exc:
                    if self.answering:
                        log.warning("The peer %s stopped answering: %s", self.endpoint, exc)
                    self.answering = False
                else:
                    if not self.answering:
                        log.info("The peer %s answers (%s)", self.endpoint, hello.get("device"))
                    self.device, self.answering = hello.get("device"), True
                time.sleep(max(PROBE_SECONDS, HEARTBEAT_SECONDS))
