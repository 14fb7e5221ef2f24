"""The session: jobs held while the sidecar starts, batches kept flowing, the sidecar's loss noticed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from triposr_addon.batch import IN_FLIGHT, Batch
from triposr_addon.launcher import LaunchSettings
from triposr_addon.session import Session
from triposr_addon.tracker import JobState

from shared.client import Event, SidecarUnavailable


class FakeClient:
    """Speaks like SidecarClient; the test decides what the sidecar says."""

    def __init__(self, endpoint: str, heartbeat_timeout: float = 15.0):
        self.endpoint = endpoint
        self.up = True
        self.submitted: dict[str, dict] = {}
        self.cancelled: list[str] = []
        self.events: list[Event] = []
        self.closed = False

    @property
    def active_jobs(self) -> set[str]:
        return set(self.submitted)

    def hello(self, timeout: float = 2.0) -> dict:
        if not self.up:
            raise SidecarUnavailable(f"No answer from the sidecar at {self.endpoint}.")
        return {"version": "0.1.0", "device": "cpu", "weights": "loaded", "backends": ["local"]}

    def submit(self, image, params=None, *, job_id=None, filename=None, deliver="bytes") -> str:
        self.submitted[job_id] = {"image": image, "params": params, "filename": filename, "deliver": deliver}
        return job_id

    def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)

    def poll(self, timeout: float = 0.0) -> list[Event]:
        events, self.events = self.events, []
        return events

    def say(self, kind: str, job: str, **header) -> None:
        self.events.append(Event(kind, job, {"type": kind, "job": job, **header}, None))
        if kind in ("result", "error", "cancelled"):
            self.submitted.pop(job, None)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def session() -> Session:
    session = Session(make_client=FakeClient)
    session.configure("tcp://127.0.0.1:5999", 15.0)
    assert session.probe()
    return session


def test_a_job_goes_to_the_sidecar_and_its_result_waits_for_import(session):
    job = session.submit(b"png", {"resolution": 32}, "mug", "mug.png")
    client = session.client
    assert client.submitted[job.id]["deliver"] == "path", "a local sidecar hands over paths, not megabytes"
    client.say("accepted", job.id)
    client.say("result", job.id, path="/store/mug.glb")
    session.update()
    assert session.tracker.ready() == [job]
    session.imported(job, ["mug"])
    assert job.state is JobState.DONE and session.tracker.ready() == []


def test_jobs_wait_while_the_sidecar_starts_and_fail_when_it_does_not(session):
    session.disconnect()
    session.starting_since, session.next_probe = 1.0, 0.0  # as start() leaves them
    job = session.submit(b"png", {}, "mug", "mug.png")
    assert job.state is JobState.WAITING and session.client is None
    session.update()  # the sidecar answers: the job goes out
    assert job.state is JobState.SUBMITTED and job.id in session.client.submitted

    session.disconnect()
    session.starting_since = 1.0
    waiting = session.submit(b"png", {}, "cup", "cup.png")
    session.starting_since, session.problem = None, "Port 5999 is taken."
    session.send_unsent()
    assert waiting.state is JobState.FAILED and waiting.error == "Port 5999 is taken."


def test_cancel_before_sending_never_reaches_the_sidecar(session):
    session.disconnect()
    session.starting_since = 1.0
    job = session.submit(b"png", {}, "mug", "mug.png")
    session.cancel(job.id)
    assert job.state is JobState.CANCELLED and not session.unsent


def test_cancel_while_running_asks_the_sidecar(session):
    job = session.submit(b"png", {}, "mug", "mug.png")
    session.cancel(job.id)
    assert session.client.cancelled == [job.id] and job.state is JobState.CANCELLING


def test_a_lost_sidecar_fails_its_jobs_and_shows_as_disconnected(session):
    job = session.submit(b"png", {}, "mug", "mug.png")
    session.client.say("error", job.id, code="sidecar_lost", message="Silent for 15 s.", retryable=True)
    session.update()
    assert job.state is JobState.FAILED and not session.connected
    assert session.problem == "Silent for 15 s."


def test_an_absent_sidecar_is_not_asked_again_through_the_same_socket(session):
    session.client.up = False
    first = session.client
    assert not session.probe()
    assert first.closed and session.client is None, (
        "queued hellos must not pile up for a sidecar that is gone"
    )


def test_a_batch_keeps_a_few_jobs_in_flight_retries_what_may_work_and_reports_failures(
    session, tmp_path: Path
):
    paths = []
    for index in range(6):
        paths.append(tmp_path / f"{index}.png")
        paths[-1].write_bytes(b"png%d" % index)
    paths[3].unlink()  # unreadable: fails without reaching the sidecar
    batch = Batch.from_paths("folder", paths, params={"resolution": 32})
    session.start_batch(batch)
    client = session.client
    assert len(client.submitted) == IN_FLIGHT - 1, "the unreadable one counts among the first four"
    assert batch.items[3].state is JobState.FAILED and "Cannot read" in batch.items[3].message

    first, second = batch.items[0], batch.items[1]
    client.say("error", first.job, code="queue_full", message="Full.", retryable=True)
    client.say("error", second.job, code="image_damaged", message="Damaged.", retryable=False)
    session.update()
    assert first.state is not JobState.FAILED and first.tries == 2, "a retryable error is tried again"
    assert second.state is JobState.FAILED and second.message == "Damaged."

    while batch.running:
        for job_id in list(client.submitted):
            client.say("result", job_id, path=f"/store/{job_id}.glb", from_store=True)
        session.update()
        for job in session.tracker.ready():
            session.imported(job, [job.name])
    assert [item.state for item in batch.items].count(JobState.DONE) == 4
    assert batch.progress_text() == "4 made, 2 failed"
    assert {item.message for item in batch.items if item.state is JobState.DONE} == {"from the store"}


def test_a_batch_restarts_the_sidecar_that_died_and_sends_what_it_took_once(session, tmp_path, monkeypatch):
    launches: list = []

    def launch(settings: LaunchSettings, log_path: Path) -> None:  # as Session.launch leaves it, no process
        launches.append(settings)
        session.starting_since, session.next_probe = time.monotonic(), 0.0

    monkeypatch.setattr(session, "launch", launch)
    answering = False  # whether the new sidecar has come up

    def make_client(endpoint: str, heartbeat_timeout: float) -> FakeClient:
        client = FakeClient(endpoint, heartbeat_timeout)
        client.up = answering
        return client

    monkeypatch.setattr(session, "_make_client", make_client)
    session.settings, session.auto_start = LaunchSettings("PYTHON", "python", session.endpoint, "", ""), True
    paths = [tmp_path / f"{index}.png" for index in range(6)]
    for path in paths:
        path.write_bytes(path.name.encode())
    batch = Batch.from_paths("folder", paths)
    session.start_batch(batch)
    taken = {item.name for item in batch.in_flight()}

    def die() -> None:
        session.launcher.process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
        session.launcher.log_path = tmp_path / "sidecar.log"
        session.launcher.process.wait()
        session.update()

    die()
    assert len(launches) == 1 and session.starting and not session.connected
    resent = {item.name for item in batch.items if item.resent}
    assert resent == taken and all(item.state is JobState.WAITING for item in batch.in_flight())
    assert session.client is None, "nothing is sent to the dead process"

    answering, session.next_probe = True, 0.0
    session.update()  # the new sidecar answers: what the death took goes out to it
    assert {session.tracker.get(item.job).name for item in batch.in_flight()} == taken
    assert session.client is not None and len(session.client.submitted) == IN_FLIGHT

    session.starting_since = None
    die()  # a second death: what was sent again is not sent a third time
    failed = [item for item in batch.items if item.state is JobState.FAILED]
    assert {item.name for item in failed} == taken
    assert failed[0].message == f"The sidecar stopped (exit code 3); its log: {tmp_path / 'sidecar.log'}"
