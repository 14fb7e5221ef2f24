"""Clients that read slowly, or go away: every terminal message still arrives, and the sidecar's memory stays
bounded. The clients here are bare DEALER sockets with ZeroMQ's default options."""

from __future__ import annotations

import psutil
from service_harness import QUICK, EventLog, RawPeer, run_job, unique_png

from shared.protocol import TERMINAL_TYPES, encode, new_job_id

BATCH = 32
# Each model about 5.5 MB: were the sidecar to keep the batch's results for the reader, they would take
# 170 MB; the reader's own queue and the sockets' buffers hold a thousand messages and a few models.
SLOW_JOB = {"resolution": 64}
MAX_RSS_GROWTH = 100 * 1024**2
BATCH_TIMEOUT = 600.0
# Progress reports asked for: beyond the thousand messages the reader's own queue takes.
FETCHES_PER_JOB = 40


def finished(client, jobs: list[str]) -> bool:
    statuses = {entry["job"]: entry["status"] for entry in client.list_results(limit=500)}
    return all(statuses.get(job) in ("done", "failed", "cancelled") for job in jobs)


def read_until_ended(peer: RawPeer, jobs: list[str]) -> dict[str, list]:
    """Every message the peer receives about `jobs`, until each has had its terminal message."""
    received: dict[str, list] = {job: [] for job in jobs}
    while not all(received[job] and received[job][-1].type in TERMINAL_TYPES for job in jobs):
        message = peer.receive(timeout=30.0)
        received[message.job].append(message)
    return received


def test_a_client_that_stops_reading_gets_every_outcome_and_costs_the_sidecar_little(sidecar, client, image):
    sidecar_process = psutil.Process(sidecar.process.pid)
    run_job(client, unique_png(image), SLOW_JOB)  # the model loaded, and a batch job's memory used once
    before = sidecar_process.memory_info().rss
    jobs = [new_job_id() for _ in range(BATCH)]
    reader = RawPeer(sidecar.endpoint)
    try:
        for job in jobs:
            reader.send(*encode("submit", job, payloads={"image": unique_png(image)}, params=SLOW_JOB))
        # Minutes of heartbeats, sped up: each fetch of a job that waits is answered with its progress. The
        # reader reads none of it, nor the batch's own progress and models.
        for _ in range(FETCHES_PER_JOB):
            for job in jobs:
                reader.send(*encode("fetch", job))
        EventLog(client).wait(lambda: finished(client, jobs), "the batch", timeout=BATCH_TIMEOUT)
        grown = sidecar_process.memory_info().rss - before
        received = read_until_ended(reader, jobs)
    finally:
        reader.close()

    outcomes = [messages[-1] for messages in received.values()]
    assert [outcome.type for outcome in outcomes] == ["result"] * BATCH
    assert all(len(outcome.payloads["glb"]) == outcome.header["glb_bytes"] for outcome in outcomes)
    for messages in received.values():
        assert messages[0].type == "accepted"
        assert {message.type for message in messages[1:-1]} == {"progress"}
    read = sum(map(len, received.values()))
    answered = BATCH * FETCHES_PER_JOB
    print(f"RSS growth {grown / 1024**2:.1f} MB; {read} messages read, {answered} fetches answered")
    assert grown < MAX_RSS_GROWTH, f"the sidecar grew by {grown / 1024**2:.0f} MB"


def test_a_client_that_comes_back_with_its_routing_id_gets_what_ended_while_it_was_away(
    sidecar, client, image
):
    routing_id = new_job_id().encode()
    job = new_job_id()
    away = RawPeer(sidecar.endpoint, routing_id)
    away.send(*encode("submit", job, payloads={"image": unique_png(image)}, params=QUICK))
    assert away.receive().type == "accepted"
    away.close()  # gone while the job runs and ends
    watcher = EventLog(client)
    watcher.wait(lambda: finished(client, [job]), "the job")

    back = RawPeer(sidecar.endpoint, routing_id)
    try:
        back.send(*encode("hello", request_id="back"))  # connects; the outbox follows the routing id
        messages = [back.receive()]
        while messages[-1].type not in TERMINAL_TYPES:
            messages.append(back.receive())
    finally:
        back.close()
    assert (messages[-1].type, messages[-1].job) == ("result", job)
