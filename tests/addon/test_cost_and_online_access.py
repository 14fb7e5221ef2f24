"""The add-on's side of Replicate, without Blender: no job leaves for it while online access is off, and the
panel's lines for a job's cost, a batch's and a job that moved from local to Replicate.

The modules come from `blender_addon/` as the package `triposr_addon` (see tests/addon/conftest.py).
"""

from __future__ import annotations

import pytest
from triposr_addon.batch import Batch, BatchItem
from triposr_addon.session import OFFLINE, Session
from triposr_addon.tracker import STAGES, Job, JobState


class Sidecar:
    """Just enough of SidecarClient: it answers hello, and keeps what is submitted."""

    def __init__(self, endpoint: str, heartbeat_timeout: float = 15.0):
        self.submitted: dict[str, dict] = {}
        self.active_jobs: set[str] = set()

    def hello(self, timeout: float = 2.0) -> dict:
        return {"weights": "loaded", "backends": ["local", "replicate"]}

    def submit(self, image, params=None, *, job_id=None, filename=None, deliver="bytes") -> str:
        self.submitted[job_id] = params
        return job_id

    def poll(self, timeout: float = 0.0) -> list:
        return []


def test_no_job_leaves_for_replicate_while_online_access_is_off():
    session = Session(make_client=Sidecar)
    session.configure("tcp://127.0.0.1:5999", 15.0)
    assert session.probe()
    session.online = False
    cloud = session.submit(b"png", {"backend": "auto"}, "mug", "mug.png")
    local = session.submit(b"png", {"backend": "local"}, "cup", "cup.png")
    assert (cloud.state, cloud.error) == (JobState.FAILED, OFFLINE)
    assert list(session.client.submitted) == [local.id]


def test_the_panel_shows_what_a_job_and_a_batch_cost_and_why_a_job_moved():
    moved = {
        "backend": "replicate",
        "device": "Nvidia A100 (80GB)",
        "cost": 0.0392,
        "failover": {"code": "out_of_memory", "reason": "it ran out of memory locally"},
    }
    job = Job("j1", "mug", result=moved, seconds=31.0)
    assert job.summary() == [
        "31.0 s on Nvidia A100 (80GB) · replicate",
        "Made on Replicate: it ran out of memory locally",
        "Cost $0.039",
    ]
    assert Job("j2", "cup", result={"from_store": True, "cost": 0.0}).summary() == ["from the store"]
    on_replicate = Job("j3", "pot", params={"backend": "replicate"}, stage="predict", fraction=0.5)
    plan = ["upload", "starting", "predict", "download", "convert", "cleanup", "export"]
    assert on_replicate.plan() == plan
    done = STAGES["upload"][1] + STAGES["starting"][1] + STAGES["predict"][1] / 2
    assert on_replicate.overall == pytest.approx(done / sum(STAGES[stage][1] for stage in plan))

    session = Session(make_client=Sidecar)
    session.batch = Batch("shelf", [BatchItem("a.png", "a", job="j1"), BatchItem("b.png", "b", job="j2")])
    for done in (job, Job("j2", "cup", result={"cost": 0.04})):
        session.tracker.add(done).state = JobState.DONE
    assert round(session.batch_cost(), 4) == 0.0792
