"""A sidecar that hands jobs to another sidecar, its peer, over CurveZMQ on loopback: both real processes.

The artist's sidecar keeps its own model busy with a long local job, so that the fastest place for a policy
job is the peer; the tests wait on events, never on time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import zmq.auth
from service_harness import LONG, QUICK, EventLog, unique_png
from sidecar_process import Launcher, Sidecar

from sidecar.security import write_keys

PEER_TIMEOUT = 2.0
FASTEST = {"backend": "fastest"}


@pytest.fixture
def peer_key(tmp_path) -> tuple[bytes, object]:
    public_file, secret_file = write_keys(tmp_path / "keys")
    return zmq.auth.load_certificate(public_file)[0], (public_file, secret_file)


@pytest.fixture
def pair(launcher: Launcher, peer_key) -> Iterator[tuple[Sidecar, Sidecar]]:
    """(the artist's sidecar, its peer), the peer answering."""
    public, (public_file, secret_file) = peer_key
    peer = launcher.spawn("--curve-secret-key", str(secret_file))
    peer.wait_ready(server_public_key=public)
    main = launcher.start(
        *("--peer", peer.endpoint, "--peer-key", str(public_file), "--peer-timeout", f"{PEER_TIMEOUT:g}")
    )
    with main.client() as client:
        deadline = time.monotonic() + 30
        while not client.hello()["peers"][0]["answering"]:
            assert time.monotonic() < deadline, f"the peer never answered:\n{main.log()}"
            time.sleep(0.1)
    yield main, peer


def busy_locally(client, image) -> str:
    """A long local job that holds the artist's model while the tests run theirs."""
    return client.submit(unique_png(image), {**LONG, "backend": "local"})


def stages(log: EventLog, job: str) -> list[str]:
    return [event.header["stage"] for event in log.events(job) if event.type == "progress"]


@pytest.mark.parametrize(
    ("peer", "says"),
    [
        ("tcp://192.168.1.20:5571", "needs CurveZMQ: pass its public key"),
        ("gpu-box:5571", "is not an endpoint of the form tcp://HOST:PORT"),
    ],
)
def test_a_peer_it_cannot_reach_safely_stops_the_sidecar_from_starting(launcher, peer, says):
    sidecar = launcher.spawn("--peer", peer)
    assert sidecar.process.wait(timeout=60) == 2
    assert says in sidecar.log() and "Traceback" not in sidecar.log()


def test_hello_names_the_peer_and_the_policies(pair):
    main, peer = pair
    with main.client() as client:
        hello = client.hello()
    assert hello["policies"] == ["fastest", "cheapest"]
    assert hello["backends"] == ["local", "peer"]
    (described,) = hello["peers"]
    assert described == {"endpoint": peer.endpoint, "answering": True, "device": "cpu"}


def test_a_job_on_the_peer_has_progress_a_cancel_and_a_result(pair, peer_key, image):
    main, peer = pair
    with main.client() as client, peer.client(server_public_key=peer_key[0]) as on_peer:
        log = EventLog(client)
        blocker = busy_locally(client, image)
        log.until_stage(blocker, "encode")

        long_job = client.submit(unique_png(image), {**LONG, **FASTEST})
        log.until_stage(long_job, "density")
        client.cancel(long_job)
        log.until_done(long_job)
        assert log.terminal(long_job).event.type == "cancelled"
        # The cancel reached the peer, which stopped the job instead of making a model nobody wants.
        deadline = time.monotonic() + 30
        while peer_jobs(on_peer)[long_job]["status"] != "cancelled":
            assert time.monotonic() < deadline, peer.log()
            time.sleep(0.1)

        job = client.submit(unique_png(image), {**QUICK, **FASTEST})
        log.until_done(job)
        result = log.terminal(job).event
        assert result.type == "result", result.header
        header = result.header
        assert header["backend"] == "peer" and header["device"] == f"cpu (peer {peer.endpoint})"
        placement = header["placement"]
        assert (placement["backend"], placement["peer"]) == ("peer", peer.endpoint)
        assert placement["reason"].startswith(f"fastest: peer {peer.endpoint} would finish in")
        assert {"encode", "density", "export"} <= set(stages(log, job)), "the peer's progress is relayed"
        assert result.payload[:4] == b"glTF"
        ran_there = peer_jobs(on_peer)[job]
        assert ran_there["status"] == "done" and ran_there["params"]["backend"] == "local"

        listed = {entry["job"]: entry for entry in client.list_results()}
        assert listed[job]["placement"] == placement
        client.cancel(blocker)
        log.until_done(blocker)


def peer_jobs(client) -> dict[str, dict]:
    return {entry["job"]: entry for entry in client.list_results()}


def test_a_peer_that_dies_hands_its_job_back_and_it_finishes_locally(pair, image):
    main, peer = pair
    with main.client() as client:
        log = EventLog(client)
        blocker = busy_locally(client, image)
        log.until_stage(blocker, "encode")
        job = client.submit(unique_png(image), {**LONG, **FASTEST})
        log.until_stage(job, "density")
        peer.process.kill()
        peer.process.wait()
        # Once the peer has been silent for the timeout, the job is queued again; the local model is freed.
        log.wait(lambda: stages(log, job)[-1] == "queued", "the job back in the queue", timeout=30)
        client.cancel(blocker)
        log.until_done(blocker, job, timeout=120)

    result = log.terminal(job).event
    assert result.type == "result", result.header
    assert result.header["backend"] == "local" and result.header["placement"]["peer"] is None
    reason = result.header["placement"]["reason"]
    assert reason.startswith(
        f"moved from peer {peer.endpoint}, which stopped answering for 2 s; fastest: local"
    )
    assert "Traceback" not in main.log()
    with main.client() as client:
        assert client.hello()["peers"][0]["answering"] is False
