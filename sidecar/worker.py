"""The threads that run jobs: one lane per backend, each a queue of tickets and the threads that take them.

The local model gets a lane of one thread, so its jobs run one at a time on the accelerator; Replicate gets a
few, so that a batch has several predictions in flight; each peer sidecar one. Each thread reports to the
socket thread over its own inproc ZeroMQ PUSH socket, in the protocol's own message format (`progress`,
`record` for facts the store should keep at once, then `result`, `error`, `cancelled`, or `requeue` when
the backend was lost and the job should run elsewhere), and writes each GLB into the store's results folder
before it reports the result, so that a full disk is the job's error and leaves no part of a file.
The socket thread never waits on a backend.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq

from shared.protocol import encode

from .failures import describe_failure
from .fileio import write_atomically
from .jobs import BackendLost, JobCancelled, JobFailed, Ticket
from .store import result_name

if TYPE_CHECKING:
    from .backends.base import Backend


# Progress within a stage is passed on at most this often; stage changes always are.
PROGRESS_SECONDS = 0.2

Emit = Callable[..., None]


class Lane:
    """One backend's queue of tickets and the threads that run them."""

    def __init__(
        self,
        name: str,
        backend: Backend,
        threads: int,
        context: zmq.Context,
        events_endpoint: str,
        results_dir: Path,
    ):
        self.name = name  # "local", "replicate" or "peer <endpoint>"
        self.backend = backend
        self.slots = threads
        self._tickets: queue.SimpleQueue[Ticket | None] = queue.SimpleQueue()  # None stops one thread
        self._context = context
        self._events_endpoint = events_endpoint
        self._results_dir = results_dir
        self._threads = [
            threading.Thread(target=self._serve, name=f"{backend.name}-{index}", daemon=True)
            for index in range(threads)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def put(self, ticket: Ticket) -> None:
        self._tickets.put(ticket)

    def stop(self) -> None:
        """Each thread ends after its current job; tickets still queued are not run."""
        for _ in self._threads:
            self._tickets.put(None)

    def all_alive(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    def any_alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def _serve(self) -> None:
        events = self._context.socket(zmq.PUSH)
        events.connect(self._events_endpoint)

        def emit(message_type: str, job: str, **fields: Any) -> None:
            events.send_multipart(encode(message_type, job, **fields), copy=False)

        try:
            self.backend.prepare()
            while (ticket := self._tickets.get()) is not None:
                if ticket.start(functools.partial(emit, "record", ticket.job)):
                    self._run(ticket, emit)
        finally:
            events.close()

    def _run(self, ticket: Ticket, emit: Emit) -> None:
        try:
            outcome = self.backend.run(ticket, ProgressReporter(ticket, emit))
            write_atomically(self._results_dir / result_name(ticket.job), outcome.glb)
        except JobCancelled as exc:
            emit("cancelled", ticket.job, **exc.record)
        except BackendLost as exc:
            emit("requeue", ticket.job, lane=exc.lane, message=str(exc))
        except Exception as exc:
            code, message = describe_failure(exc)
            record = exc.record if isinstance(exc, JobFailed) else {}
            emit("error", ticket.job, code=code, message=message, **record)
        else:
            fields = {"backend": self.backend.name, **outcome.fields()}
            emit("result", ticket.job, payloads={"glb": outcome.glb}, **fields)


class ProgressReporter:
    """The backends' progress callback: stops a cancelled job, and passes progress on without flooding."""

    def __init__(self, ticket: Ticket, emit: Emit):
        self._ticket = ticket
        self._emit = emit
        self._stage: str | None = None
        self._sent_at = 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        self._ticket.raise_if_cancelled()
        now = time.monotonic()
        if stage != self._stage or fraction >= 1.0 or now - self._sent_at >= PROGRESS_SECONDS:
            self._stage, self._sent_at = stage, now
            self._emit("progress", self._ticket.job, stage=stage, fraction=fraction)
