"""Admitting a job (`submit`): the limits, and the answers that need no new run.

A submitted job is, in this order: the same job sent again (answered with its state), a job the store already
answers (a finished one, or another job's identical result), a job identical to one queued or running (it
joins that run), or a new run, if the queue has room.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

from shared.protocol import MAX_HEADER_BYTES, Message, ProtocolError, encode

from .active_jobs import ActiveJobs
from .delivery import Delivery
from .dispatch import Dispatch
from .job_events import SHUTTING_DOWN, JobEvents
from .jobs import ActiveJob, Ticket
from .lanes import asked_for, kind
from .memory import format_bytes
from .outcomes import Outcomes
from .params import parse_params
from .request_fields import check_same_job, delivery, filename, job_of
from .routing import Routing
from .store import JobRecord, Store
from .triposr.preprocess import DEFAULT_MAX_PIXELS

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 32
DEFAULT_MAX_IMAGE_BYTES = 50 * 1024**2


@dataclass(frozen=True)
class Limits:
    queue_size: int = DEFAULT_QUEUE_SIZE  # runs waiting for a worker
    image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    image_pixels: int = DEFAULT_MAX_PIXELS

    def describe(self) -> dict[str, int]:
        return {
            "header_bytes": MAX_HEADER_BYTES,
            "image_bytes": self.image_bytes,
            "image_pixels": self.image_pixels,
            "queue_size": self.queue_size,
        }


class Admission:
    def __init__(
        self,
        limits: Limits,
        active: ActiveJobs,
        store: Store,
        delivery: Delivery,
        results: Outcomes,
        routing: Routing,
        events: JobEvents,
        dispatch: Dispatch,
    ):
        self._limits = limits
        self._active = active
        self._store = store
        self._delivery = delivery
        self._outcomes = results
        self._routing = routing
        self._events = events
        self._dispatch = dispatch

    def submit(self, peer: bytes, message: Message) -> None:
        job = job_of(message)
        if self._events.stopping:
            raise ProtocolError("shutting_down", SHUTTING_DOWN)
        image = self._image(message)
        params = parse_params(
            message.header.get("params"),
            tuple(self._routing.replicate_models),
            self._routing.replicate_refusal,
        )
        deliver, name = delivery(message.header), filename(message.header)
        digest = hashlib.sha256(image).hexdigest()
        fingerprint = (digest, params.to_wire())

        if (active := self._active.get(job)) is not None:  # sent again: answered with the job's state
            check_same_job(job, active.fingerprint, fingerprint)
            active.subscribers[peer] = deliver
            self._accepted(peer, job, active.params, name)
            self._events.send_progress(active, [peer])
            return
        record = self._store.get(job)
        if record is not None:
            check_same_job(job, (record.image_sha256, record.params), fingerprint)
            if not self._runs_again(record):
                self._accepted(peer, job, record.params, record.filename)
                self._outcomes.send_stored(peer, record, deliver)
                return
        keys = self._routing.cache_keys(params, digest)
        cached = next(filter(None, map(self._store.cached_result, keys)), None)
        if cached is not None:
            log.info("Job %s is answered with the result of job %s", job, cached.id)
            record = self._store.reuse(cached, job, name, params.to_wire())
            self._accepted(peer, job, record.params, name)
            self._outcomes.send_stored(peer, record, deliver)
            return

        key = f"{params.backend} {keys[0]}"  # identical jobs: same backend, same result
        work = self._active.joinable(key)
        if work is None and self._active.queue_length() >= self._limits.queue_size:
            raise ProtocolError(
                "queue_full",
                f"{self._limits.queue_size} jobs are already waiting; submit this one when some are done.",
            )
        lane = params.runs_on if work is None else work.lane
        self._store.add(
            JobRecord(
                id=job,
                status="queued" if work is None or work.queued else "running",
                image_sha256=digest,
                filename=name,
                params=params.to_wire(),
                cache_key=self._routing.cache_key(params, digest, lane),
                model=self._routing.identity(params, lane),
                backend=kind(lane),  # a policy job not placed yet: its policy
                failover=None if work is None else work.failover,
                # A policy job's placement is known once the scheduler has placed it.
                placement=None if params.policy else asked_for(params.backend),
                source_job=None if work is None else work.owner.id,
                created_at=time.time(),
            )
        )
        new_run = work is None
        if work is None:
            work = self._active.start(Ticket(job, image, params, name), key, lane)
            log.info("Job %s accepted (%s, %s bytes)", job, name or "unnamed image", f"{len(image):,}")
        else:
            log.info("Job %s joins job %s, which makes the same model", job, work.owner.id)
        active = ActiveJob(job, fingerprint, name, {peer: deliver}, work)
        self._active.add(active)
        self._accepted(peer, job, active.params, name)
        self._events.send_progress(active, [peer])
        if new_run:  # once the run has its member, whose record a placement updates
            self._dispatch.add(work)

    def _image(self, message: Message) -> bytes:
        image = message.payloads.get("image")
        if image is None:
            raise ProtocolError(
                "missing_payload", 'A submit carries the image in a payload frame named "image".'
            )
        if len(image) > self._limits.image_bytes:
            raise ProtocolError(
                "payload_too_large",
                f"The image file is {format_bytes(len(image))}; this sidecar takes images up to "
                f"{format_bytes(self._limits.image_bytes)}. Scale it down or save it as JPEG.",
            )
        return image

    def _runs_again(self, record: JobRecord) -> bool:
        """A job sent again runs again when it failed for a passing reason, or its result was pruned."""
        if record.status == "failed":
            return record.retryable
        return record.status == "done" and not self._store.has_result(record)

    def _accepted(self, peer: bytes, job: str, params: dict, name: str | None) -> None:
        self._delivery.event(peer, job, encode("accepted", job, params=params, filename=name))
