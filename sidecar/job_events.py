"""What happens to jobs once they are accepted: the workers' events, heartbeats, `cancel` and `fetch`, and
each job's one terminal message, recorded in the store before it goes to the job's subscribers.

Every member of a run (identical jobs share one, see `jobs.Work`) hears its progress under its own id. The
run's owner, its first member, gets the result and the cost; the others are answered with that result.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from shared.protocol import HEARTBEAT_SECONDS, Message, ProtocolError, encode

from . import outcomes
from .active_jobs import ActiveJobs
from .backends.auto import failover, moves_to_replicate, why_it_stayed
from .delivery import Delivery
from .dispatch import Dispatch
from .estimator import Estimator
from .jobs import ActiveJob, Ticket, Work
from .lanes import placement
from .request_fields import delivery, job_of
from .retention import Retention
from .routing import Routing
from .store import Store, result_name

log = logging.getLogger(__name__)

# The result columns a lane's `result` event fills.
RESULT_FIELDS = (
    "backend",
    "model",
    "device",
    "vertices",
    "faces",
    "stage_seconds",
    "peak_rss_bytes",
    "peak_device_bytes",
    "glb_bytes",
    "cost",
    "metrics",
    "prediction",
)
# What an `error` or `cancelled` event may add for the store: the cost of a prediction that failed, say.
RUN_FIELDS = ("cost", "metrics", "prediction")
# What a `record` event may tell the store while the job runs.
RECORDED_FACTS = ("prediction",)
SHUTTING_DOWN = "The sidecar is shutting down; submit the job again once it runs."


class JobEvents:
    def __init__(
        self,
        active: ActiveJobs,
        store: Store,
        delivery: Delivery,
        results: outcomes.Outcomes,
        routing: Routing,
        retention: Retention,
        estimator: Estimator,
        dispatch: Dispatch,
    ):
        self._active = active
        self._store = store
        self._delivery = delivery
        self._outcomes = results
        self._routing = routing
        self._retention = retention
        self._estimator = estimator
        self._dispatch = dispatch
        self.stopping = False

    # Requests about jobs.

    def fetch(self, peer: bytes, message: Message) -> None:
        job, deliver = job_of(message), delivery(message.header)
        if (active := self._active.get(job)) is not None:
            active.subscribers[peer] = deliver
            self.send_progress(active, [peer])
        else:
            self._send_stored(
                peer, job, deliver, f"This sidecar has no job {job}; its store may have pruned it."
            )

    def cancel(self, peer: bytes, message: Message) -> None:
        """Cancel a job: whoever asks hears how it ends, like a `fetch`; for a finished job, that is now."""
        job, deliver = job_of(message), delivery(message.header)
        active = self._active.get(job)
        if active is None:
            self._send_stored(peer, job, deliver, f"There is no job {job} to cancel.")
            return
        active.subscribers.setdefault(peer, deliver)
        # Alone, a job that has started stops at its next progress report, and the worker says "cancelled".
        if len(active.work.members) > 1 or active.work.ticket.cancel():
            self._store.cancel(job)
            self._end(active, outcomes.cancelled(job))

    def _send_stored(self, peer: bytes, job: str, deliver: str, unknown: str) -> None:
        record = self._store.get(job)
        if record is None:
            raise ProtocolError("unknown_job", unknown)
        self._outcomes.send_stored(peer, record, deliver)

    # Progress.

    def send_progress(self, job: ActiveJob, peers=None) -> None:
        frames = encode("progress", job.id, **job.progress_fields(self._active.position(job)))
        for peer in job.subscribers if peers is None else peers:
            self._delivery.progress(peer, job.id, frames)
        job.last_sent = time.monotonic()

    def heartbeat(self) -> None:
        now = time.monotonic()
        for job in self._active:
            if now - job.last_sent >= HEARTBEAT_SECONDS:
                self.send_progress(job)

    # The workers' events.

    def on_worker_event(self, message: Message) -> None:
        header = message.header
        if message.type in ("result", "error", "cancelled", "requeue"):  # the run's last event: a slot freed
            self._dispatch.ended(message.job or "", message.type == "result", header.get("cost"))
        work = self._active.work_of_event(message.job)
        if work is None:
            return
        if message.type == "progress":
            self._dispatch.started(work.ticket.job)
            if work.queued:
                for member in work.members:
                    self._store.mark_running(member.id)
            work.stage, work.fraction = header["stage"], header["fraction"]
            for member in work.members:
                self.send_progress(member)
        elif message.type == "record":
            self._store.update(
                work.owner.id, **{name: header[name] for name in RECORDED_FACTS if name in header}
            )
        elif message.type == "result":
            self._finish(work, header, message.payloads["glb"])
        elif message.type == "requeue":
            self._requeue(work, header["lane"], header["message"])
        elif message.type == "cancelled":
            run = {name: header[name] for name in RUN_FIELDS if name in header}
            if self.stopping:
                self._fail(work, "shutting_down", SHUTTING_DOWN, **run)
            else:
                self._cancelled(work, **run)
        else:
            self._failed(work, header)

    def _finish(self, work: Work, header: dict[str, Any], glb: bytes) -> None:
        owner, *joined = work.members
        made = {name: header[name] for name in RESULT_FIELDS}
        record = self._store.finish(owner.id, result_name(work.ticket.job), source_job=None, **made)
        records = [record, *(self._store.reuse(record, job.id, job.filename, job.params) for job in joined)]
        self._retention.added(len(glb))
        self._estimator.record(work.ticket.params, {**header, "backend": work.lane})  # "peer ENDPOINT"
        cost = f", ${header['cost']:.4f}" if header["cost"] is not None else ""
        seconds = sum(header["stage_seconds"].values())
        log.info("Job %s done on %s in %.1f s%s", owner.id, header["backend"], seconds, cost)
        for job, made_for in zip(work.members[:], records, strict=True):
            self._active.remove(job)
            for peer, deliver in job.subscribers.items():
                self._outcomes.send_result(peer, made_for, deliver, glb, from_store=False)

    def _cancelled(self, work: Work, **run: Any) -> None:
        owner = work.owner
        for job in work.members[:]:
            charged = run if job is owner else {}
            log.info("Job %s cancelled", job.id)
            self._store.cancel(job.id, **charged)
            self._end(job, outcomes.cancelled(job.id, **outcomes.charge(charged)))

    def _failed(self, work: Work, header: dict[str, Any]) -> None:
        code, text = header["code"], header["message"]
        if code == "token_rejected":
            self._routing.refuse_replicate(code, text)
        if self._moves_to_replicate(work, code):
            self._move_to_replicate(work, code, text)
            return
        if work.failover is not None:
            text = f"{text} (It went to Replicate because {work.failover['reason']}.)"
        else:
            text += why_it_stayed(work.ticket.params, code, self._routing.replicate_refusal)
        log.info("Job %s failed (%s): %s", work.owner.id, code, text)
        self._fail(work, code, text, **{name: header[name] for name in RUN_FIELDS if name in header})

    def _moves_to_replicate(self, work: Work, code: str) -> bool:
        ready = self._routing.replicate_usable and not self.stopping and not work.ticket.cancelled
        return work.failover is None and moves_to_replicate(work.ticket.params, code, ready)

    def _move_to_replicate(self, work: Work, code: str, message: str) -> None:
        """An `auto` run failed locally for a reason Replicate does not share: the same run goes there, with
        a ticket of its own (one that a cancel stops before it starts)."""
        log.info("Job %s moves to Replicate: %s", work.owner.id, message)
        work.failover = failover(code, message)
        old = work.ticket
        for job in work.members:
            self._store.update(
                job.id,
                backend="replicate",
                model=self._routing.identity(old.params, "replicate"),
                cache_key=self._routing.cache_keys(old.params, job.fingerprint[0])[-1],  # a Replicate result
                failover=work.failover,
                placement=placement("replicate", f"auto: {work.failover['reason']}"),
            )
        work.ticket, work.lane = Ticket(old.job, old.image, old.params, old.filename), "replicate"
        self._dispatch.send(work, "replicate")

    def _requeue(self, work: Work, lane: str, message: str) -> None:
        """The run's lane was lost (a peer stopped answering): the run waits for a place elsewhere."""
        if self.stopping:
            self._fail(work, "shutting_down", SHUTTING_DOWN)
            return
        if work.ticket.cancelled:  # cancelled as its lane was lost
            self._cancelled(work)
            return
        log.info("Job %s goes back to the queue: %s %s", work.owner.id, lane, message)
        for job in work.members:
            self._store.update(job.id, status="queued")
        self._dispatch.requeue(work, lane, message)
        for job in work.members:
            self.send_progress(job)

    # Stopping.

    def stop(self) -> None:
        """Queued runs end now; running ones at their next progress report."""
        self.stopping = True
        for work in self._active.works():
            if work.ticket.cancel():
                self._fail(work, "shutting_down", SHUTTING_DOWN)

    def end_all(self) -> None:
        """The runs that outlived the grace period still end, for their jobs' clients."""
        for work in self._active.works():
            self._fail(work, "shutting_down", SHUTTING_DOWN)

    # The end of a job.

    def _fail(self, work: Work, code: str, message: str, **run: Any) -> None:
        owner = work.owner
        for job in work.members[:]:
            charged = run if job is owner else {}
            self._store.fail(job.id, code, message, **charged)
            placed = self._store.get(job.id).placement
            self._end(job, outcomes.error(job.id, code, message, placed, **outcomes.charge(charged)))

    def _end(self, job: ActiveJob, frames: list) -> None:
        self._active.remove(job)
        for peer in job.subscribers:
            self._delivery.event(peer, job.id, frames)
