"""Jobs that meet: an identical job joins one that is queued or running, and a client may follow, fetch, list
and cancel any job, whoever submitted it (the sidecar trusts every client that can reach it)."""

from __future__ import annotations

from service_harness import LONG, QUICK, EventLog, unique_png


def accepted(log: EventLog, *jobs: str) -> None:
    log.wait(lambda: all(log.events(job) for job in jobs), f"the acceptance of {jobs}")


def test_an_identical_job_joins_the_one_queued_and_the_model_runs_once(sidecar, image):
    picture = unique_png(image)
    with sidecar.client() as first, sidecar.client() as second:
        logs = EventLog(first), EventLog(second)
        blocker = first.submit(unique_png(image), LONG)  # keeps the worker busy while the two are sent
        job = first.submit(picture, QUICK)
        accepted(logs[0], job)  # before the twin is sent: two sockets' messages may be read in any order
        twin = second.submit(picture, QUICK)
        accepted(logs[1], twin)
        first.cancel(blocker)
        logs[0].until_done(blocker, job)
        logs[1].until_done(twin)

    made, joined = logs[0].terminal(job).event, logs[1].terminal(twin).event
    assert (made.type, joined.type) == ("result", "result")
    assert made.payload == joined.payload
    assert (made.header["source_job"], joined.header["source_job"]) == (None, job)
    assert joined.header["stage_seconds"] == made.header["stage_seconds"]
    assert {event.header.get("stage") for event in logs[1].events(twin)} >= {"encode", "density"}
    log = sidecar.log()
    assert f"Job {twin} joins job {job}" in log
    assert log.count(f"Job {job} done") == 1 and f"Job {twin} done" not in log, "the model ran once"


def test_cancelling_one_of_two_identical_jobs_leaves_the_other_to_finish(client, image):
    picture, log = unique_png(image), EventLog(client)
    blocker = client.submit(unique_png(image), LONG)
    job = client.submit(picture, QUICK)
    twin = client.submit(picture, QUICK)
    accepted(log, job, twin)
    client.cancel(job)
    log.until_done(job)
    client.cancel(blocker)
    log.until_done(blocker, twin)
    assert log.terminal(job).event.type == "cancelled"
    result = log.terminal(twin).event
    assert result.type == "result" and result.header["source_job"] is None


def test_a_client_may_list_fetch_and_cancel_a_job_another_client_submitted(sidecar, image):
    with sidecar.client() as owner, sidecar.client() as other:
        logs = EventLog(owner), EventLog(other)
        job = owner.submit(unique_png(image), LONG)
        logs[0].until_stage(job, "density")
        assert job in [entry["job"] for entry in other.list_results()]
        other.fetch(job)
        logs[1].until_stage(job, "density")  # the fetch made it a subscriber: it hears the progress
        other.cancel(job)
        logs[0].until_done(job)
        logs[1].until_done(job)
    assert logs[0].terminal(job).event.type == logs[1].terminal(job).event.type == "cancelled"
