"""Jobs in flight: the ticket a worker runs, the work identical jobs share, and each job's subscribers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from shared.protocol import QUEUED

from .glb import DEFAULT_MODEL_NAME
from .params import JobParams


class JobCancelled(Exception):
    """Raised from the progress callback to stop the job it reports on.

    `record` holds what the store should keep about the run that was stopped: the cost of a prediction that
    had started on Replicate, say.
    """

    def __init__(self, job: str, **record: Any):
        super().__init__(job)
        self.record = record


class JobFailed(Exception):
    """A backend's failure that it has already named: `code` is one of the protocol's error codes.

    `record` holds what the store should keep about the failed run anyway, such as the cost of a prediction
    that failed on Replicate (which is billed all the same).
    """

    def __init__(self, code: str, message: str, **record: Any):
        super().__init__(message)
        self.code = code
        self.record = record


class BackendLost(Exception):
    """The backend stopped answering (or refused work) in a way that says nothing about the job: a peer
    sidecar that went silent, say. The job goes back to the queue, to run elsewhere. The message says what
    the lane did, as a clause ("stopped answering for 6 s")."""

    def __init__(self, lane: str, message: str):
        super().__init__(message)
        self.lane = lane


class Ticket:
    """An accepted job on its way through the queue, shared by the socket thread and the worker.

    The lock makes starting and cancelling exclusive: a job cancelled before the worker takes it never starts,
    and one the worker has started stops at its next progress report. A job that moves to another backend
    (`auto` failing over) gets a new ticket there.
    """

    def __init__(self, job: str, image: bytes, params: JobParams, filename: str | None = None):
        self.job = job
        self.image = image
        self.params = params
        self.filename = filename
        self._lock = threading.Lock()
        self._started = False
        self._cancelled = threading.Event()
        self._recorder: Callable[..., None] = lambda **facts: None

    def start(self, recorder: Callable[..., None]) -> bool:
        """Called by the worker: True if the job is still wanted and is now running; `recorder` passes on
        what the backend records about the run."""
        with self._lock:
            self._started = not self._cancelled.is_set()
            self._recorder = recorder
            return self._started

    def cancel(self) -> bool:
        """True if the job had not started, so it never will; else it stops at its next progress report."""
        with self._lock:
            self._cancelled.set()
            return not self._started

    def record(self, **facts: Any) -> None:
        """Have the store keep a fact about the run as soon as it is known (a prediction's id: should the
        sidecar die now, the record still says which prediction to look for, and pay for)."""
        self._recorder(**facts)

    @property
    def name(self) -> str:
        """What the model is called inside its GLB: the image's name without its extension."""
        return PurePath(self.filename or "").stem or DEFAULT_MODEL_NAME

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def raise_if_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise JobCancelled(self.job)

    def wait_cancelled(self, seconds: float) -> None:
        """Sleep for `seconds`, or raise JobCancelled as soon as the job is cancelled."""
        if self._cancelled.wait(seconds):
            raise JobCancelled(self.job)


@dataclass(eq=False)
class Work:
    """One run of a model, and the jobs that wait for it: a job submitted while an identical one (same image,
    parameters, backend and model) is queued or running joins that one's work instead of running again.

    The first member owns the run (its record gets the cost); the others are answered with its result. Only
    when every member has been cancelled is the run itself cancelled.
    """

    ticket: Ticket
    key: str  # what identical jobs share: their backend and the cache key of the result they would make
    lane: str  # the backend it runs on now: "local" or "replicate"
    members: list[ActiveJob] = field(default_factory=list)
    stage: str = QUEUED
    fraction: float = 0.0
    failover: dict[str, Any] | None = None  # set when an `auto` run has moved from local to Replicate
    lost_in: frozenset[str] = frozenset()  # lanes lost while running it (a silent peer): it never goes back

    @property
    def owner(self) -> ActiveJob:
        return self.members[0]

    @property
    def queued(self) -> bool:
        return self.stage == QUEUED


@dataclass(eq=False)
class ActiveJob:
    """What the socket thread knows of a queued or running job, and who wants its events."""

    id: str
    fingerprint: tuple[str, dict[str, Any]]  # image SHA-256 and parameters: a resubmission must match
    filename: str | None
    subscribers: dict[bytes, str]  # peer routing id -> how it wants the result delivered
    work: Work
    accepted_at: float = field(default_factory=time.monotonic)
    last_sent: float = field(default_factory=time.monotonic)

    @property
    def params(self) -> dict[str, Any]:
        return self.fingerprint[1]

    @property
    def queued(self) -> bool:
        return self.work.queued

    def progress_fields(self, position: int | None) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "stage": self.work.stage,
            "fraction": round(self.work.fraction, 4),
            "elapsed": round(time.monotonic() - self.accepted_at, 3),
        }
        if position is not None:
            fields["position"] = position
        return fields
