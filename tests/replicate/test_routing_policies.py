"""A batch under the `fastest` policy, split over the local model, a peer sidecar (over CurveZMQ) and the fake
Replicate, within a budget: all real processes on loopback.

Speeds are compared within one run: each single backend makes the same kind of batch first, and the fake's
predictions are made to take as long as four local models (so that Replicate alone, four at a time, is about
as quick as the local model alone). The mixed batch must finish no later than the best of them, with every
image made once and the budget kept; and again when the peer is killed halfway, allowing for the time it
takes to notice that the peer has gone.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from dataclasses import dataclass

import pytest
import zmq.auth
from fake_replicate import TOKEN
from meshes import as_tripo_sr_on_replicate
from replicate_harness import SIDECAR_ARGS, start_sidecar
from service_harness import EventLog, unique_png
from sidecar_process import Sidecar
from test_submit import pictures, submit

from sidecar.backends.models import DEFAULT_PRICE_PER_SECOND
from sidecar.security import write_keys

IMAGES = 24
BUDGET = 0.50
PREDICT_TIME = 28.0  # what the fake bills: $0.0392 a model, so the budget pays for 12
MODEL_COST = PREDICT_TIME * DEFAULT_PRICE_PER_SECOND
PEER_TIMEOUT = 2.0
# Models that take long enough (about a second on a laptop's CPU) for a peer's silence to be noticed in time.
IMAGE_PARAMS = {"resolution": 64}
BATCH_TIMEOUT = 600.0


@dataclass
class Batch:
    log: EventLog
    jobs: list[str]
    started: float

    @property
    def seconds(self) -> float:
        return max(self.log.terminal(job).at for job in self.jobs) - self.started

    def results(self) -> list[dict]:
        ends = [self.log.terminal(job).event for job in self.jobs]
        assert all(end.type == "result" for end in ends), [end.header for end in ends if end.type != "result"]
        return [end.header for end in ends]


def submit_batch(client, image: bytes, params: dict) -> Batch:
    log = EventLog(client)
    started = time.monotonic()
    jobs = [client.submit(unique_png(image), params) for _ in range(IMAGES)]
    return Batch(log, jobs, started)


def run_batch(client, image: bytes, params: dict) -> Batch:
    batch = submit_batch(client, image, params)
    batch.log.until_done(*batch.jobs, timeout=BATCH_TIMEOUT)
    return batch


@pytest.fixture
def studio(launcher, fake, tmp_path, monkeypatch):
    """(the artist's sidecar, with a token for the fake Replicate and a peer; the peer; its public key).

    Each uses one core, as if each had a machine of its own: two models on the same cores, each with threads
    for all of them, would slow each other down many times over."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    fake.reset(mesh=as_tripo_sr_on_replicate(), predict_time=PREDICT_TIME)
    public_file, secret_file = write_keys(tmp_path / "keys")
    public = zmq.auth.load_certificate(public_file)[0]
    peer = launcher.spawn("--curve-secret-key", str(secret_file))
    peer.wait_ready(server_public_key=public)
    main = start_sidecar(
        launcher, fake.url, TOKEN, *SIDECAR_ARGS,
        *("--peer", peer.endpoint, "--peer-key", str(public_file), "--peer-timeout", f"{PEER_TIMEOUT:g}"),
    )  # fmt: skip
    with main.client() as client:
        deadline = time.monotonic() + 30
        while not client.hello()["peers"][0]["answering"]:
            assert time.monotonic() < deadline, f"the peer never answered:\n{main.log()}"
            time.sleep(0.1)
    return main, peer, public


def best_single_backend(main: Sidecar, peer: Sidecar, public: bytes, fake, image: bytes) -> float:
    """Each backend alone makes a batch; the fake is set to take four local models' time a prediction. The
    fake's record of predictions is cleared at the end, for the batch to come."""
    with main.client() as client:
        local = run_batch(client, image, {**IMAGE_PARAMS, "backend": "local"})
        fake.behaviour.run_seconds = 4 * local.seconds / IMAGES
        replicate = run_batch(client, image, {**IMAGE_PARAMS, "backend": "replicate"})
    with peer.client(server_public_key=public) as client:
        on_peer = run_batch(client, image, {**IMAGE_PARAMS, "backend": "local"})
    times = {"local": local.seconds, "replicate": replicate.seconds, "peer": on_peer.seconds}
    print(f"single backends, {IMAGES} images: {times}")
    fake.reset(**{**vars(fake.behaviour), "create_errors": []})
    return min(times.values())


def fastest_within_budget(batch: str) -> dict:
    return {**IMAGE_PARAMS, "backend": "fastest", "budget": BUDGET, "batch": batch}


def check_each_image_made_once(batch: Batch, fake, peer: Sidecar) -> Counter:
    """Where the batch's images were made: each once, Replicate's as often as the fake saw predictions,
    the peer's as often as the peer's store says it made one."""
    results = batch.results()
    where = Counter(result["placement"]["backend"] for result in results)
    assert sum(where.values()) == IMAGES and set(where) <= {"local", "peer", "replicate"}
    assert where["replicate"] == len(fake.predictions)
    with sqlite3.connect(peer.data_dir / "jobs.sqlite") as database:
        marks = ", ".join("?" * len(batch.jobs))
        (made_on_peer,) = database.execute(
            f"SELECT COUNT(*) FROM jobs WHERE status = 'done' AND id IN ({marks})", batch.jobs
        ).fetchone()
    assert where["peer"] == made_on_peer
    for result in results:
        assert result["backend"] == result["placement"]["backend"]
        assert "fastest: " in result["placement"]["reason"], result["placement"]
    spent = sum(result["cost"] or 0.0 for result in results)
    assert spent <= BUDGET and len(fake.predictions) * MODEL_COST <= BUDGET, (spent, where)
    return where


def test_a_fastest_batch_within_a_budget_beats_every_single_backend(studio, fake, image):
    main, peer, public = studio
    best = best_single_backend(main, peer, public, fake, image)
    with main.client() as client:
        batch = run_batch(client, image, fastest_within_budget("fastest-24"))
    where = check_each_image_made_once(batch, fake, peer)
    print(f"fastest within ${BUDGET}: {batch.seconds:.1f} s against {best:.1f} s, {dict(where)}")
    assert batch.seconds <= best, (batch.seconds, best, where)
    assert where["replicate"] > 0 and where["local"] > 0 and where["peer"] > 0, where


def test_a_peer_killed_halfway_hands_its_images_to_the_others(studio, fake, image):
    main, peer, public = studio
    best = best_single_backend(main, peer, public, fake, image)
    with main.client() as client, peer.client(server_public_key=public) as on_peer:
        batch = submit_batch(client, image, fastest_within_budget("killed-24"))
        ended = lambda: sum(batch.log.terminal(job) is not None for job in batch.jobs)  # noqa: E731
        # Halfway, while the peer is making one of the batch's models.
        batch.log.wait(lambda: ended() >= IMAGES // 2 and peer_is_busy(on_peer), "half the batch")
        peer.process.kill()
        peer.process.wait()
        batch.log.until_done(*batch.jobs, timeout=BATCH_TIMEOUT)
    where = check_each_image_made_once(batch, fake, peer)
    lost = f"moved from peer {peer.endpoint}, which stopped answering"
    moved = [result for result in batch.results() if result["placement"]["reason"].startswith(lost)]
    print(f"peer killed: {batch.seconds:.1f} s against {best:.1f} s, {dict(where)}, {len(moved)} moved")
    assert moved and all(result["placement"]["backend"] != "peer" for result in moved)
    # The peer's last job starts again elsewhere once the peer has been silent for the timeout.
    assert batch.seconds <= best + PEER_TIMEOUT, (batch.seconds, best, where)


def peer_is_busy(client) -> bool:
    return any(job["stage"] != "queued" for job in client.status()["jobs"])


def test_cheapest_without_a_deadline_pays_for_nothing(studio, fake, image):
    main = studio[0]
    with main.client() as client:
        log = EventLog(client)
        jobs = [client.submit(unique_png(image), {**IMAGE_PARAMS, "backend": "cheapest"}) for _ in range(4)]
        log.until_done(*jobs)
    results = [log.terminal(job).event.header for job in jobs]
    assert all(result["cost"] is None for result in results) and not fake.created
    assert {result["placement"]["backend"] for result in results} <= {"local", "peer"}
    assert all(" costs nothing, finishing in ≈" in result["placement"]["reason"] for result in results)


def test_submit_says_where_the_fastest_policy_placed_each_image_within_the_budget(
    cloud_sidecar, fake, image, tmp_path
):
    fake.behaviour.mesh = as_tripo_sr_on_replicate()
    images = pictures(tmp_path / "in", image, "a.png", "b.png", "c.png")
    options = ("--backend", "fastest", "--budget", "0.05", "--resolution", "32")
    done = submit(cloud_sidecar, images, tmp_path / "out", *options)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith(str(tmp_path / "in"))]
    assert len(lines) == 3 and all("fastest: " in line for line in lines), done.stdout
    assert len(fake.created) <= 1, "the budget pays for one prediction"

    refused = submit(cloud_sidecar, images, tmp_path / "out", "--backend", "local", "--budget", "1")
    assert refused.returncode == 2 and "go with --backend fastest or cheapest" in refused.stderr
