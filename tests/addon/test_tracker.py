"""The job state machine, driven by events as the client delivers them."""

from __future__ import annotations

import pytest
from triposr_addon.tracker import STAGES, Job, JobState, JobTracker

from shared.client import Event


def event(kind: str, job: str, **header) -> Event:
    return Event(kind, job, {"type": kind, "job": job, **header}, header.pop("payload", None))


def test_a_job_runs_from_sent_to_ready_and_shows_its_progress():
    tracker = JobTracker()
    job = tracker.add(Job("j1", "mug"))
    assert job.state is JobState.SUBMITTED
    tracker.apply(event("accepted", "j1"))
    tracker.apply(event("progress", "j1", stage="queued", fraction=0.0, position=2))
    assert (job.state, job.progress_text()) == (JobState.QUEUED, "In the queue, 1 ahead")
    tracker.apply(event("progress", "j1", stage="density", fraction=0.5))
    assert job.state is JobState.RUNNING
    assert job.progress_text() == "Sampling the shape 50%"
    # two small stages done and half of density, of a default job's stages (vertex colours, clean-up)
    plan = ["preprocess", "encode", "density", "cleanup", "colour", "export"]
    assert job.plan() == plan
    total = sum(STAGES[stage][1] for stage in plan)
    done = STAGES["preprocess"][1] + STAGES["encode"][1] + STAGES["density"][1] / 2
    assert job.overall == pytest.approx(done / total)
    tracker.apply(
        event("result", "j1", path="/x.glb", vertices=1200, faces=2400, device="cpu", backend="local")
    )
    assert job.state is JobState.READY and tracker.ready() == [job]
    assert job.summary()[1] == "1,200 vertices, 2,400 faces"
    assert "cpu · local" in job.summary()[0]


def test_a_result_after_cancel_is_dropped():
    tracker = JobTracker()
    job = tracker.add(Job("j1", "mug"))
    tracker.apply(event("progress", "j1", stage="density", fraction=0.2))
    assert tracker.cancel("j1")
    tracker.apply(event("result", "j1", path="/x.glb"))
    assert job.state is JobState.CANCELLED and not tracker.ready()
    assert not tracker.cancel("j1"), "a finished job cannot be cancelled again"


def test_errors_carry_the_sentence_code_and_whether_to_retry():
    tracker = JobTracker()
    broken = tracker.add(Job("j1", "mug"))
    lost = tracker.add(Job("j2", "cup"))
    tracker.apply(
        event("error", "j1", code="image_damaged", message="The image is damaged.", retryable=False)
    )
    tracker.apply(event("error", "j2", code="sidecar_lost", message="Nothing for 15 s.", retryable=True))
    assert (broken.state, broken.error, broken.retryable) == (JobState.FAILED, "The image is damaged.", False)
    assert (lost.error, lost.error_code, lost.retryable) == ("Nothing for 15 s.", "sidecar_lost", True)


def test_events_of_other_jobs_and_after_the_end_change_nothing():
    tracker = JobTracker()
    job = tracker.add(Job("j1", "mug"))
    assert tracker.apply(event("progress", "other", stage="encode", fraction=0.1)) is None
    tracker.apply(event("cancelled", "j1"))
    assert tracker.apply(event("result", "j1", path="/x.glb")) is None
    assert job.state is JobState.CANCELLED


def test_costs_and_the_store_show_in_the_summary():
    job = Job("j1", "mug", result={"from_store": True, "backend": "replicate", "cost": 0.0412})
    assert job.summary() == ["from the store on replicate", "Cost $0.041"]


def test_where_the_sidecar_placed_a_job_shows_for_jobs_it_placed():
    placement = {"backend": "replicate", "peer": None, "reason": "fastest: ≈ 20 s there, ≈ 60 s here"}
    placed = Job("j1", "mug", params={"backend": "fastest"}, result={"placement": placement})
    assert placed.placement() == "on Replicate: fastest: ≈ 20 s there, ≈ 60 s here"
    assert "Ran on Replicate: fastest: ≈ 20 s there, ≈ 60 s here" in placed.summary()
    peer = {"backend": "peer", "peer": "tcp://gpu-box:5571", "reason": "cheapest: free"}
    assert Job("j2", "cup", params={"backend": "cheapest"}, result={"placement": peer}).placement() == (
        "on tcp://gpu-box:5571: cheapest: free"
    )
    asked = Job("j3", "pot", params={"backend": "local"}, result={"placement": {"backend": "local"}})
    assert asked.placement() == "", "a job sent where the artist chose tells nothing new"
