"""Jobs through a real sidecar over TCP: progress, results, cancellation, the store and the queue's limit."""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
import time

import trimesh
from gltf_validator import assert_valid
from service_harness import DEFAULT_STAGES, LONG, QUICK, EventLog, run_job, unique_png

from shared.protocol import PROTOCOL_VERSION, QUEUED, TERMINAL_TYPES, encode, new_job_id
from sidecar import __version__
from sidecar.admission import DEFAULT_QUEUE_SIZE
from sidecar.pipeline import STAGES

STAGE_ORDER = (QUEUED, *STAGES)


def test_hello_answers_with_versions_backends_and_limits(client):
    hello = client.hello()
    assert hello["protocol"] == PROTOCOL_VERSION
    assert hello["version"] == __version__
    assert hello["backends"] == ["local"]
    assert hello["weights"] in ("loading", "loaded")
    assert hello["weights_error"] is None
    assert hello["stages"] == list(STAGES)
    assert hello["limits"]["queue_size"] == DEFAULT_QUEUE_SIZE
    assert hello["queue_length"] == 0


def test_a_job_streams_ordered_progress_then_its_glb(client, image, tmp_path):
    events = run_job(client, unique_png(image), QUICK, filename="input.png")
    assert [event.type for event in events[:1] + events[-1:]] == ["accepted", "result"]
    progress = [event.header for event in events[1:-1]]
    assert {event.type for event in events[1:-1]} == {"progress"}
    assert {header["stage"] for header in progress} == DEFAULT_STAGES | {QUEUED}
    steps = [(STAGE_ORDER.index(header["stage"]), header["fraction"]) for header in progress]
    assert steps == sorted(steps)
    elapsed = [header["elapsed"] for header in progress]
    assert elapsed == sorted(elapsed)

    result = events[-1]
    mesh = trimesh.load(io.BytesIO(result.payload), file_type="glb", force="mesh", process=False)
    header = result.header
    assert (len(mesh.vertices), len(mesh.faces)) == (header["vertices"], header["faces"])
    assert header["faces"] > 0
    assert header["glb_bytes"] == len(result.payload)
    assert_valid(result.payload, folder=tmp_path)
    assert header["from_store"] is False
    assert (header["backend"], header["device"], header["cost"]) == ("local", "cpu", None)
    assert set(header["stage_seconds"]) == DEFAULT_STAGES
    assert header["peak_rss_bytes"] > 0
    assert (header["filename"], header["params"]["resolution"]) == ("input.png", QUICK["resolution"])
    assert not client.active_jobs


def test_job_events_that_arrive_during_a_blocking_request_wait_for_the_next_poll(client, image):
    job = client.submit(unique_png(image), QUICK)
    while client.status()["jobs"]:  # replies come in order: once no job is active, its events are all here
        pass
    events = client.poll()
    assert [event.type for event in events[:1] + events[-1:]] == ["accepted", "result"]
    assert {event.job for event in events} == {job}
    assert {event.type for event in events[1:-1]} == {"progress"}


def test_a_job_gets_exactly_one_terminal_message(raw_peer, image):
    job = new_job_id()
    raw_peer.send(*encode("submit", job, payloads={"image": unique_png(image)}, params=QUICK))
    received = [raw_peer.receive()]
    while received[-1].type not in TERMINAL_TYPES:
        received.append(raw_peer.receive())
    # Replies leave in order: anything sent about the job before the status reply arrives before it.
    raw_peer.send(*encode("status", request_id="after"))
    later = []
    while (message := raw_peer.receive()).type != "status":
        later.append(message.header)
    assert later == []
    assert [message.type for message in received].count("result") == 1
    assert message.header["jobs"] == []


def test_two_clients_submitting_at_once_each_get_their_own_result(sidecar, image):
    with sidecar.client() as first, sidecar.client() as second:
        first_job = first.submit(unique_png(image), {"resolution": 32})
        second_job = second.submit(unique_png(image), {"resolution": 48})
        first_log, second_log = EventLog(first), EventLog(second)
        first_log.until_done(first_job)
        second_log.until_done(second_job)
    assert set(first_log.by_job) == {first_job}
    assert set(second_log.by_job) == {second_job}
    first_result, second_result = first_log.terminal(first_job).event, second_log.terminal(second_job).event
    assert first_result.type == second_result.type == "result"
    assert first_result.header["params"]["resolution"] == 32
    assert second_result.header["params"]["resolution"] == 48
    assert first_result.header["vertices"] < second_result.header["vertices"]


def test_cancel_stops_a_running_job_within_seconds_and_the_worker_takes_the_next(client, image):
    log = EventLog(client)
    long_job = client.submit(unique_png(image), LONG)
    log.until_stage(long_job, "preprocess")
    next_job = client.submit(unique_png(image), QUICK)
    dropped_job = client.submit(unique_png(image), QUICK)
    log.until_stage(long_job, "density")

    client.cancel(dropped_job)  # still queued: it ends at once
    log.until_done(dropped_job)
    assert log.terminal(long_job) is None
    asked = time.monotonic()
    client.cancel(long_job)
    log.until_done(long_job, next_job)

    assert log.terminal(dropped_job).event.type == "cancelled"
    assert {event.header.get("stage") for event in log.events(dropped_job)} <= {QUEUED, None}
    assert log.terminal(long_job).event.type == "cancelled"
    assert log.terminal(long_job).at - asked < 3.0
    assert log.terminal(next_job).event.type == "result"
    started = next(r.at for r in log.by_job[next_job] if r.event.header.get("stage") in STAGES)
    assert started >= log.terminal(long_job).at
    statuses = {entry["job"]: entry["status"] for entry in client.list_results()}
    assert statuses[long_job] == statuses[dropped_job] == "cancelled"


def test_an_identical_submit_is_answered_from_the_store(client, image):
    picture = unique_png(image)
    first = run_job(client, picture)
    second = run_job(client, picture)
    assert first[-1].header["from_store"] is False
    assert second[-1].type == "result"
    assert second[-1].header["from_store"] is True
    assert second[-1].header["source_job"] == first[-1].job
    assert second[-1].payload == first[-1].payload
    assert [event.type for event in second] == ["accepted", "result"]  # no progress: the model did not run


def test_resubmitting_a_job_id_sends_its_outcome_again(client, image):
    picture, job = unique_png(image), new_job_id()
    first = run_job(client, picture, job_id=job)
    again = run_job(client, picture, job_id=job)
    assert again[-1].type == "result"
    assert again[-1].job == job
    assert again[-1].payload == first[-1].payload


def test_a_fetch_returns_a_past_result_as_bytes_or_as_a_path(client, image):
    job = run_job(client, unique_png(image))[-1].job
    log = EventLog(client)
    client.fetch(job)
    log.until_done(job)
    as_bytes = log.terminal(job).event
    client.fetch(job, deliver="path")
    log.by_job.clear()
    log.until_done(job)
    as_path = log.terminal(job).event
    assert as_path.payload is None
    with open(as_path.header["path"], "rb") as stream:
        assert stream.read() == as_bytes.payload


def test_a_full_queue_refuses_with_a_retryable_error(launcher, image):
    with launcher.start("--queue-size", "2").client() as client:
        log = EventLog(client)
        running = client.submit(unique_png(image), LONG)
        log.until_stage(running, "encode")
        waiting = [client.submit(unique_png(image), QUICK) for _ in range(2)]
        refused = client.submit(unique_png(image), QUICK)
        log.until_done(refused)
        assert client.status()["queue_length"] == 2
        for job in (running, *waiting):
            client.cancel(job)
        log.until_done(running, *waiting)
    error = log.terminal(refused).event
    assert [event.type for event in log.events(refused)] == ["error"]
    assert (error.header["code"], error.header["retryable"]) == ("queue_full", True)


def test_a_waiting_job_hears_from_the_sidecar_every_heartbeat(sidecar, image):
    # A queued job gets no progress from the worker at all: everything it hears is a heartbeat.
    with sidecar.client(heartbeat_timeout=4.0) as client:
        log = EventLog(client)
        running = client.submit(unique_png(image), LONG)
        log.until_stage(running, "density")
        waiting = client.submit(unique_png(image), QUICK)
        log.wait(lambda: len(log.by_job[waiting]) >= 5, "five messages to the waiting job")
        client.cancel(running)
        log.until_done(running, waiting)
    heard = [
        r for r in log.by_job[waiting] if r.event.type == "progress" and r.event.header["stage"] == QUEUED
    ]
    assert len(heard) >= 4
    assert {r.event.header["position"] for r in heard} == {1}
    assert max(later.at - earlier.at for earlier, later in itertools.pairwise(heard)) < 3.0
    assert log.terminal(waiting).event.type == "result"


def test_the_submit_command_writes_a_glb_per_image_and_reports_failures(sidecar, image, tmp_path):
    images = [tmp_path / "first.png", tmp_path / "broken.png", tmp_path / "second.png"]
    for path, data in zip(images, [unique_png(image), image[:300], unique_png(image)], strict=True):
        path.write_bytes(data)
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "submit", *map(str, images), "--endpoint", sidecar.endpoint,
         "--out", str(out), "--resolution", "32"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert sorted(path.name for path in out.iterdir()) == ["first.glb", "second.glb"]
    assert len(trimesh.load(out / "first.glb", force="mesh").faces) > 0
    assert "broken.png" in done.stderr and "damaged" in done.stderr
