"""The scheduler's decisions without a sidecar: where waiting images go now, given lanes and estimates."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from sidecar.params import parse_params
from sidecar.scheduler import LaneState, Waiting, forecast, plan

PEER = "peer tcp://gpu-box:5571"


class Estimates:
    """Fixed seconds and dollars per lane."""

    def __init__(self, seconds: dict[str, float], cost: float = 0.04):
        self._seconds = seconds
        self._cost = cost

    def seconds(self, lane, params) -> float:
        return self._seconds[lane]

    def cost(self, lane, params) -> float:
        return self._cost if lane == "replicate" else 0.0


def waiting(count: int, backend: str = "fastest", batch: str = "b", **policy) -> list[Waiting]:
    params = parse_params({"backend": backend, "batch": batch, **policy}, replicate_refusal=None)
    return [Waiting(f"job-{index}", params, batch) for index in range(count)]


LOCAL = LaneState("local", slots=1)
REPLICATE = LaneState("replicate", slots=4, paid=True)


def test_fastest_fills_every_lane_that_finishes_soonest_and_keeps_the_rest_waiting():
    estimates = Estimates({"local": 10.0, "replicate": 20.0})
    placed = plan(waiting(6), [LOCAL, REPLICATE], estimates, {})
    # One image locally (done at 10 s), four on Replicate (done at 20 s, as a second local one would be);
    # the sixth is best run locally after the first (20 s against Replicate's 40 s): it waits for that.
    assert Counter(placement.lane for placement in placed) == {"local": 1, "replicate": 4}
    assert placed[0].reason == "fastest: local would finish in ≈10 s, Replicate ≈20 s"


def test_fastest_places_only_what_is_needed_now():
    estimates = Estimates({"local": 10.0, "replicate": 30.0})
    placed = plan(waiting(2), [LOCAL, REPLICATE], estimates, {})
    assert [placement.lane for placement in placed] == ["local"], "the second waits for the local model"


def test_a_busy_lane_counts_from_when_its_slots_free():
    busy = replace(LOCAL, running=(2.0,), running_estimates=(100.0,))
    placed = plan(waiting(1), [busy, REPLICATE], Estimates({"local": 10.0, "replicate": 30.0}), {})
    assert [placement.lane for placement in placed] == ["replicate"]
    assert placed[0].reason == "fastest: Replicate would finish in ≈30 s, local ≈108 s"


@pytest.mark.parametrize("committed", [0.0, 0.03, 0.08])
def test_the_budget_is_never_exceeded_counting_what_is_in_flight(committed):
    lanes = [replace(LOCAL, running=(0.0,), running_estimates=(1000.0,)), REPLICATE]
    placed = plan(
        waiting(24, budget=0.10), lanes, Estimates({"local": 100.0, "replicate": 5.0}), {"b": committed}
    )
    assert all(placement.lane == "replicate" for placement in placed)
    assert committed + sum(placement.cost for placement in placed) <= 0.10
    assert len(placed) == int((0.10 - committed) / 0.04 + 1e-9)


def test_the_reason_says_when_the_budget_kept_a_job_off_replicate():
    (placed,) = plan(
        waiting(1, budget=0.10),
        [LOCAL, REPLICATE],
        Estimates({"local": 100.0, "replicate": 5.0}),
        {"b": 0.08},
    )
    assert placed.lane == "local"
    assert placed.reason.endswith("; budget left $0.02 < $0.04 a model")


def test_batches_have_budgets_of_their_own():
    estimates = Estimates({"local": 100.0, "replicate": 5.0})
    lanes = [replace(LOCAL, running=(0.0,), running_estimates=(1000.0,)), REPLICATE]
    jobs = waiting(2, budget=0.04, batch="a") + waiting(2, budget=0.04, batch="b")
    jobs = [replace(job, job=f"{job.batch}-{index}") for index, job in enumerate(jobs)]
    placed = plan(jobs, lanes, estimates, {"a": 0.04})
    assert [placement.job for placement in placed] == ["b-2"]


def test_cheapest_stays_on_free_lanes_when_they_make_the_deadline():
    busy = replace(LOCAL, running=(0.0,), running_estimates=(30.0,))
    estimates = Estimates({"local": 10.0, "replicate": 5.0})
    assert plan(waiting(1, "cheapest", deadline=60.0), [busy, REPLICATE], estimates, {}) == []
    (placed,) = plan(waiting(1, "cheapest"), [LOCAL, REPLICATE], estimates, {})
    assert placed.lane == "local" and placed.cost == 0.0


def test_cheapest_pays_to_meet_a_deadline_the_free_lanes_would_miss():
    busy = replace(LOCAL, running=(0.0,), running_estimates=(30.0,))
    estimates = Estimates({"local": 10.0, "replicate": 5.0})
    (placed,) = plan(waiting(1, "cheapest", deadline=20.0), [busy, REPLICATE], estimates, {})
    assert placed.lane == "replicate"
    assert placed.reason.startswith("cheapest within the deadline: Replicate ≈5 s for $0.04; local ≈40 s")
    # Without the money for it, the job waits for the free lane, late.
    assert plan(waiting(1, "cheapest", deadline=20.0, budget=0.01), [busy, REPLICATE], estimates, {}) == []


def test_cheapest_pays_where_no_free_lane_is_open():
    (placed,) = plan(waiting(1, "cheapest"), [REPLICATE], Estimates({"replicate": 5.0}), {})
    assert placed.lane == "replicate"
    assert placed.reason == "cheapest: no free lane can run it; Replicate ≈5 s for $0.04"


def test_the_measured_times_of_a_lanes_latest_jobs_move_work_elsewhere():
    estimates = Estimates({"local": 10.0, "replicate": 30.0})
    assert [p.lane for p in plan(waiting(2), [LOCAL, REPLICATE], estimates, {})] == ["local"]
    slow = replace(LOCAL, history=((10.0, 40.0),) * 5)  # local models take four times the estimate
    assert [p.lane for p in plan(waiting(2), [slow, REPLICATE], estimates, {})] == ["replicate", "replicate"]
    # Only the latest five count.
    recovered = replace(LOCAL, history=((10.0, 40.0),) * 5 + ((10.0, 10.0),) * 5)
    assert [p.lane for p in plan(waiting(2), [recovered, REPLICATE], estimates, {})] == ["local"]


def test_a_job_lost_with_a_lane_does_not_go_back_there():
    peer = LaneState(PEER, slots=1)
    job = replace(waiting(1)[0], excluded=frozenset({PEER}))
    (placed,) = plan([job], [peer, LOCAL], Estimates({PEER: 1.0, "local": 10.0}), {})
    assert placed.lane == "local"


def test_a_forecast_plays_the_policy_out_image_after_image():
    estimates = Estimates({"local": 10.0, "replicate": 20.0})
    params = waiting(1)[0].params
    # local, then Replicate twice (ready at 20 s, as the local model would be again, and free now)
    free = forecast(3, params, [LOCAL, REPLICATE], estimates)
    assert (free.lanes, free.seconds, free.cost, free.left) == ({"local": 1, "replicate": 2}, 20.0, 0.08, 0)
    budget = waiting(1, budget=0.05)[0].params
    kept = forecast(3, budget, [LOCAL, REPLICATE], estimates)
    assert (kept.lanes, kept.seconds, kept.cost, kept.left) == ({"local": 2, "replicate": 1}, 20.0, 0.04, 0)
    beyond = forecast(3, budget, [REPLICATE], estimates)
    assert (beyond.lanes, beyond.left) == ({"replicate": 1}, 2), "the budget pays for one; no free lane"
