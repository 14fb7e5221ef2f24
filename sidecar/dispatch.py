"""Handing runs to lanes: a job that named its backend goes there at once; a policy job waits here until the
scheduler places it, which it asks whenever something may have changed (a job came, a slot freed).

It knows each lane's runs (since when, estimated at what) so that the scheduler sees when slots free, each
lane's latest measured times (to correct the estimates), and what each batch has spent or has in flight, so
that its budget holds. A run lost with its lane (a peer that stopped answering) comes back to the front of
the queue, never to go to that lane again. The socket thread alone uses it.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from shared.protocol import QUEUED

from .jobs import Ticket, Work
from .lanes import placement
from .params import JobParams
from .routing import Routing
from .scheduler import CALIBRATION_JOBS, Estimates, LaneState, Waiting, forecast, plan, shown
from .store import Store

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Run:
    ticket: Ticket
    lane: str
    batch: str
    estimate: float  # seconds, as the estimates said (uncalibrated)
    cost: float  # dollars committed for it until it ends
    sent_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None  # its first progress


class Dispatch:
    def __init__(self, routing: Routing, estimates: Estimates, store: Store):
        self._routing = routing
        self._estimates = estimates
        self._store = store
        self._waiting: deque[Work] = deque()
        self._moved: dict[str, str] = {}  # ticket job -> why it left its last lane
        self._runs: dict[str, _Run] = {}  # ticket job -> its run in a lane
        # Each lane's latest models: their parameters and measured seconds, from start to result.
        self._history: dict[str, deque[tuple[JobParams, float]]] = defaultdict(
            lambda: deque(maxlen=CALIBRATION_JOBS)
        )
        self._spent: dict[str, float] = defaultdict(float)  # batch -> what its ended runs cost

    def add(self, work: Work) -> None:
        """A new run: to its lane now, or (a policy job) to the queue."""
        if work.ticket.params.policy:
            self._waiting.append(work)
            self.pump()
        else:
            self.send(work, work.lane)

    def send(self, work: Work, lane: str) -> None:
        """Into `lane` (a job that named its backend, or an `auto` one moving to Replicate)."""
        params = work.ticket.params
        cost = self._estimates.cost(lane, params) if lane == "replicate" else 0.0
        self._runs[work.ticket.job] = _Run(
            work.ticket, lane, _batch(work), self._estimates.seconds(lane, params), cost
        )
        self._routing.put(work.ticket, lane)

    def requeue(self, work: Work, lane: str, why: str) -> None:
        """The run was lost with its lane: it goes first, anywhere but there, with a ticket of its own."""
        old = work.ticket
        self._runs.pop(old.job, None)
        work.ticket = Ticket(old.job, old.image, old.params, old.filename)
        work.lane, work.stage, work.fraction = old.params.backend, QUEUED, 0.0
        work.lost_in |= {lane}
        self._moved[old.job] = f"moved from {shown(lane)}, which {why}"
        self._waiting.appendleft(work)
        self.pump()

    def started(self, ticket_job: str) -> None:
        run = self._runs.get(ticket_job)
        if run is not None and run.started_at is None:
            run.started_at = time.monotonic()

    def ended(self, ticket_job: str, made: bool, cost: float | None) -> None:
        """A run's last event: a model `made` teaches its lane's speed; whatever it cost is spent."""
        run = self._runs.pop(ticket_job, None)
        if run is None:
            return
        if made:
            measured = time.monotonic() - (run.started_at or run.sent_at)
            self._history[run.lane].append((run.ticket.params, measured))
        self._spent[run.batch] += cost or 0.0
        self.pump()

    def pump(self) -> None:
        """Place what should start now."""
        self._drop_ended()
        if not self._waiting:
            return
        works = {work.ticket.job: work for work in self._waiting}
        now = time.monotonic()
        waiting = [
            Waiting(
                job,
                work.ticket.params,
                _batch(work),
                now - work.owner.accepted_at,
                work.lost_in,
            )
            for job, work in works.items()
        ]
        for chosen in plan(waiting, self._lane_states(), self._estimates, self._committed()):
            work = works[chosen.job]
            self._waiting.remove(work)
            reason = "; ".join(filter(None, (self._moved.pop(chosen.job, None), chosen.reason)))
            self._place(work, chosen.lane, reason, chosen.cost)

    def forecast(self, params: JobParams, count: int) -> dict[str, Any] | None:
        """How a batch of `count` images like these would go under their policy, from the lanes as they are
        now; None for a job that names its backend."""
        if not params.policy:
            return None
        found = forecast(count, params, self._lane_states(), self._estimates)
        return {"backend": params.backend, **asdict(found), "seconds": round(found.seconds, 2)}

    def _place(self, work: Work, lane: str, reason: str, cost: float) -> None:
        params, job = work.ticket.params, work.ticket.job
        where = placement(lane, reason)
        log.info("Job %s goes to %s: %s", work.owner.id, shown(lane), reason)
        for member in work.members:
            self._store.update(
                member.id,
                backend=where["backend"],
                model=self._routing.identity(params, lane),
                cache_key=self._routing.cache_key(params, member.fingerprint[0], lane),
                placement=where,
            )
        work.lane = lane
        self._runs[job] = _Run(work.ticket, lane, _batch(work), self._estimates.seconds(lane, params), cost)
        self._routing.put(work.ticket, lane)

    def _drop_ended(self) -> None:
        """Forget runs cancelled before they started: their lane skips them, and no event comes."""
        for work in [work for work in self._waiting if work.ticket.cancelled or not work.members]:
            self._waiting.remove(work)
            self._moved.pop(work.ticket.job, None)
        for job, run in list(self._runs.items()):
            if run.ticket.cancelled and run.started_at is None:
                del self._runs[job]

    def _lane_states(self) -> list[LaneState]:
        now = time.monotonic()
        states = []
        for lane in self._routing.open_lanes():
            # Runs in the order they were sent, as the lane takes them: those not started have run 0 s.
            runs = [run for run in self._runs.values() if run.lane == lane.name]
            states.append(
                LaneState(
                    name=lane.name,
                    slots=lane.slots,
                    running=tuple(now - run.started_at if run.started_at else 0.0 for run in runs),
                    running_estimates=tuple(run.estimate for run in runs),
                    # Against what the estimates say now: they learn from results too, and must not be
                    # corrected twice for what they have learnt.
                    history=tuple(
                        (self._estimates.seconds(lane.name, params), measured)
                        for params, measured in self._history[lane.name]
                    ),
                    paid=lane.name == "replicate",
                )
            )
        return states

    def _committed(self) -> dict[str, float]:
        """Each batch's spending: what its ended runs cost, and its runs in flight at the most they may."""
        committed = dict(self._spent)
        for run in self._runs.values():
            if run.cost:
                now = self._estimates.cost(run.lane, run.ticket.params)
                committed[run.batch] = committed.get(run.batch, 0.0) + max(run.cost, now)
        return committed


def _batch(work: Work) -> str:
    """What shares a budget: the jobs of one named batch, else the run alone."""
    return work.ticket.params.batch or work.ticket.job
