"""Where the waiting jobs of the policies go now: a pure decision, from the lanes' state and the estimates.

`fastest` places each image where it would finish soonest (each lane's next free slot plus the image's
estimated time there), Replicate only while the batch's budget lasts. `cheapest` keeps to the free lanes
(local, peers) unless that misses the job's deadline, and then takes the cheapest paid lane that makes it.
Only images whose best lane has a slot free now are placed; the others wait, and are planned afresh at the
next decision, so that they move as the measured times come in. Estimates are scaled by how each lane's
recent jobs measured against what they were estimated at.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .params import JobParams

# The finished jobs of a lane whose measured times correct its estimates.
CALIBRATION_JOBS = 5
# A slot free within this is free now; finish times this close are equal, and then the lane free now wins,
# then the one that costs nothing, then the first named.
SAME_SECONDS = 1e-3
# A job past its estimate is taken to end in a moment: its slot is not free yet.
OVERDUE_SECONDS = 0.1


class Estimates(Protocol):
    def seconds(self, lane: str, params: JobParams) -> float: ...

    def cost(self, lane: str, params: JobParams) -> float: ...


@dataclass(frozen=True)
class LaneState:
    name: str  # "local", "replicate" or "peer <endpoint>"
    slots: int  # jobs it runs at once
    running: tuple[float, ...] = ()  # seconds each of its jobs has been running, in the order they came
    running_estimates: tuple[float, ...] = ()  # ... and what each was estimated to take, uncalibrated
    history: tuple[tuple[float, float], ...] = ()  # (estimated, measured) seconds of its latest models
    paid: bool = False

    def calibration(self) -> float:
        """The mean ratio of measured to estimated time of its latest jobs; 1 before it has any."""
        latest = self.history[-CALIBRATION_JOBS:]
        recent = [measured / estimated for estimated, measured in latest if estimated]
        return sum(recent) / len(recent) if recent else 1.0

    def free_at(self, factor: float) -> list[float]:
        """When each slot is next free, in seconds from now, as a heap: the lane's jobs take slots in the
        order they came (those waiting have run 0 s)."""
        slots = [0.0] * self.slots
        for elapsed, estimate in zip(self.running, self.running_estimates, strict=True):
            start = heapq.heappop(slots)
            heapq.heappush(slots, start + max(estimate * factor - elapsed, OVERDUE_SECONDS))
        return slots


@dataclass(frozen=True)
class Waiting:
    job: str  # the run's ticket id
    params: JobParams
    batch: str  # what shares the budget
    waited: float = 0.0  # seconds since it was submitted (a deadline counts from then)
    excluded: frozenset[str] = field(default_factory=frozenset)  # lanes it must not go to (lost there)


@dataclass(frozen=True)
class Placement:
    job: str
    lane: str
    reason: str
    cost: float  # what it is estimated to cost


def shown(lane: str) -> str:
    return "Replicate" if lane == "replicate" else lane


def plan(
    waiting: Sequence[Waiting],
    lanes: Sequence[LaneState],
    estimates: Estimates,
    committed: Mapping[str, float],
) -> list[Placement]:
    """The jobs to hand to a lane now. `committed` is what each batch has spent or has in flight."""
    factors = {lane.name: lane.calibration() for lane in lanes}
    slots = {lane.name: lane.free_at(factors[lane.name]) for lane in lanes}
    spent = dict(committed)
    placements = []
    asked: dict[tuple[str, JobParams], tuple[float, float]] = {}  # a batch's images share their estimates
    for job in waiting:
        options = []
        for lane in lanes:
            if lane.name in job.excluded:
                continue
            key = (lane.name, job.params)
            if key not in asked:
                cost = estimates.cost(lane.name, job.params) if lane.paid else 0.0
                asked[key] = (estimates.seconds(lane.name, job.params) * factors[lane.name], cost)
            options.append(_Option(lane, slots[lane.name][0], *asked[key]))
        chosen, reason = _choose(job, options, spent.get(job.batch, 0.0))
        if chosen is None:
            continue
        heapq.heapreplace(slots[chosen.lane.name], chosen.finish)  # the slot is taken until then
        spent[job.batch] = spent.get(job.batch, 0.0) + chosen.cost
        if chosen.start <= SAME_SECONDS:
            placements.append(Placement(job.job, chosen.lane.name, reason, chosen.cost))
    return placements


@dataclass(frozen=True)
class Forecast:
    """How a batch would go under its policy: `plan`'s choices played out, image after image."""

    seconds: float  # until its last image is made
    cost: float  # dollars
    lanes: dict[str, int]  # the images each lane would make
    left: int  # images no lane may take: the budget spent, and no free lane open


def forecast(count: int, params: JobParams, lanes: Sequence[LaneState], estimates: Estimates) -> Forecast:
    """A batch of `count` images like `params`, each placed in turn as `plan` would place it, at the time
    its lane comes free, were nothing else to change."""
    factors = {lane.name: lane.calibration() for lane in lanes}
    slots = {lane.name: lane.free_at(factors[lane.name]) for lane in lanes}
    figures = {
        lane.name: (
            estimates.seconds(lane.name, params) * factors[lane.name],
            estimates.cost(lane.name, params) if lane.paid else 0.0,
        )
        for lane in lanes
    }
    job = Waiting("forecast", params, "forecast")
    spent, finish, made = 0.0, 0.0, Counter[str]()
    for index in range(count):
        options = [_Option(lane, slots[lane.name][0], *figures[lane.name]) for lane in lanes]
        chosen, _reason = _choose(job, options, spent)
        if chosen is None:
            return Forecast(finish, spent, dict(made), count - index)
        heapq.heapreplace(slots[chosen.lane.name], chosen.finish)
        spent += chosen.cost
        finish = max(finish, chosen.finish)
        made[chosen.lane.name] += 1
    return Forecast(finish, spent, dict(made), 0)


@dataclass(frozen=True)
class _Option:
    lane: LaneState
    start: float
    seconds: float
    cost: float

    @property
    def finish(self) -> float:
        return self.start + self.seconds

    def order(self) -> tuple[float, bool, bool]:
        return (round(self.finish / SAME_SECONDS), self.start > SAME_SECONDS, self.lane.paid)


def _choose(job: Waiting, options: list[_Option], spent: float) -> tuple[_Option | None, str]:
    budget = job.params.budget
    affordable = [option for option in options if budget is None or spent + option.cost <= budget + 1e-9]
    if job.params.backend == "cheapest":
        return _cheapest(job, options, affordable, budget, spent)
    return _fastest(options, affordable, budget, spent)


def _fastest(
    options: list[_Option], affordable: list[_Option], budget: float | None, spent: float
) -> tuple[_Option | None, str]:
    if not affordable:
        return None, ""
    chosen = min(affordable, key=_Option.order)
    others = sorted((option for option in options if option.lane is not chosen.lane), key=_Option.order)
    reason = f"fastest: {shown(chosen.lane.name)} would finish in ≈{chosen.finish:.0f} s"
    reason += "".join(f", {shown(option.lane.name)} ≈{option.finish:.0f} s" for option in others[:2])
    quicker = [option for option in options if option not in affordable and option.order() < chosen.order()]
    if quicker and budget is not None:
        reason += f"; budget left ${max(budget - spent, 0.0):.2f} < ${quicker[0].cost:.2f} a model"
    return chosen, reason


def _cheapest(
    job: Waiting, options: list[_Option], affordable: list[_Option], budget: float | None, spent: float
) -> tuple[_Option | None, str]:
    free = [option for option in options if not option.lane.paid]
    deadline = None if job.params.deadline is None else job.params.deadline - job.waited
    soonest_free = min(free, key=_Option.order, default=None)
    if soonest_free is not None and _makes(soonest_free, deadline):
        free_lane, finish = shown(soonest_free.lane.name), soonest_free.finish
        reason = f"cheapest: {free_lane} costs nothing, finishing in ≈{finish:.0f} s"
        if deadline is not None:
            reason += f", within the deadline (≈{deadline:.0f} s left)"
        return soonest_free, reason
    in_time = [option for option in affordable if option.lane.paid and _makes(option, deadline)]
    if in_time:
        chosen = min(in_time, key=lambda option: (option.cost, option.order()))
        paid = f"{shown(chosen.lane.name)} ≈{chosen.finish:.0f} s for ${chosen.cost:.2f}"
        if soonest_free is None:
            return chosen, f"cheapest: no free lane can run it; {paid}"
        late = f"{shown(soonest_free.lane.name)} ≈{soonest_free.finish:.0f} s"
        return chosen, f"cheapest within the deadline: {paid}; {late} would miss ≈{deadline:.0f} s"
    # Nothing makes the deadline (or the budget forbids what would): the soonest the budget allows.
    chosen = min(affordable, key=_Option.order, default=None)
    if chosen is None:
        return None, ""
    reason = f"cheapest: no lane makes the deadline; {shown(chosen.lane.name)} is soonest"
    reason += f" (≈{chosen.finish:.0f} s)"
    if budget is not None and any(option.lane.paid and option not in affordable for option in options):
        reason += f"; budget left ${max(budget - spent, 0.0):.2f}"
    return chosen, reason


def _makes(option: _Option, deadline: float | None) -> bool:
    return deadline is None or option.finish <= deadline
