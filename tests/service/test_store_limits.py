"""The store within its limits: the least recently used models go first, old and surplus failed jobs are
forgotten, a pruned job runs again; and a disk that fills up while a model is written fails only that job."""

from __future__ import annotations

import io
import time
from dataclasses import replace

import pytest
from PIL import Image
from service_harness import QUICK, EventLog, run_job, unique_png

from shared.protocol import new_job_id
from sidecar.pipeline import GenerationParams, generate_glb
from sidecar.retention import KEPT_FAILURES
from sidecar.store import JobRecord, Store, result_name

# QUICK models fit on the "disk" of the full-disk test; these do not.
TOO_BIG_FOR_THE_DISK = {"resolution": 64}  # about 5.5 MB
DISK_BYTES = 3_000_000
DAY = 86400.0


@pytest.fixture(scope="module")
def model_bytes(tiny_model, image) -> int:
    """The size of a QUICK model of the test image, as the sidecar makes it (its pixels never change)."""
    picture = Image.open(io.BytesIO(image))
    return len(generate_glb(tiny_model, picture, GenerationParams(**QUICK)).glb)


def stored_bytes(sidecar) -> int:
    return sum(path.stat().st_size for path in (sidecar.data_dir / "results").iterdir())


def test_the_least_recently_used_models_go_first_and_a_pruned_one_is_result_missing(
    launcher, image, model_bytes
):
    limit = int(2.5 * model_bytes)  # two models fit, three do not
    sidecar = launcher.start("--store-max-gb", f"{limit / 1e9:.9f}")
    with sidecar.client() as client:
        log = EventLog(client)
        first, second = (run_job(client, unique_png(image))[-1] for _ in range(2))
        client.fetch(first.job)  # used again: now the second is the least recently used
        log.until_done(first.job)
        third = run_job(client, unique_png(image))[-1]
        size = stored_bytes(sidecar)
        for job in (first.job, second.job, third.job):
            client.fetch(job)
        log.until_done(first.job, second.job, third.job)
        statuses = {entry["job"]: entry["status"] for entry in client.list_results()}

    print(f"store: {size:,} bytes of models under a limit of {limit:,}")
    assert size <= limit
    missing = log.terminal(second.job).event.header
    assert (missing["code"], missing["retryable"]) == ("result_missing", False)
    assert "--store-max-gb" in missing["message"] and "Submit the job again" in missing["message"]
    assert log.terminal(first.job).event.type == log.terminal(third.job).event.type == "result"
    assert statuses[second.job] == "done", "its row stays: the job is known, its model is not"


def test_a_pruned_job_submitted_again_runs_again(launcher, image, model_bytes):
    sidecar = launcher.start("--store-max-gb", f"{1.5 * model_bytes / 1e9:.9f}")  # one model fits
    picture, job = unique_png(image), new_job_id()
    with sidecar.client() as client:
        made = run_job(client, picture, job_id=job)[-1]
        run_job(client, unique_png(image))  # takes its place
        again = run_job(client, picture, job_id=job)
    assert made.type == "result" and not made.header["from_store"]
    assert again[0].type == "accepted"
    assert {event.header.get("stage") for event in again} >= {"encode", "density"}, "the model ran again"
    assert again[-1].type == "result" and not again[-1].header["from_store"]
    assert again[-1].payload == made.payload


def test_old_jobs_and_failures_beyond_the_newest_are_forgotten_and_what_they_cost_still_counts(
    launcher, tmp_path, image
):
    data_dir = tmp_path / "store"
    now = time.time()
    store = Store(data_dir)
    failures = [new_job_id() for _ in range(KEPT_FAILURES + 50)]
    for age, job in enumerate(failures):  # the first is the newest
        record = JobRecord(job, "queued", "sha", None, {}, "key", "m", "replicate", created_at=now - age)
        store.add(record)
        store.fail(job, "prediction_failed", "It failed.", cost=0.01)
    old, recent = new_job_id(), new_job_id()
    for job, when in ((old, now - 30 * DAY), (recent, now - DAY / 2)):
        done = JobRecord(job, "done", "sha", None, {}, job, "m", "local", cost=0.5, glb_file=result_name(job))
        store.add(replace(done, created_at=when, finished_at=when, used_at=when))
        (store.results_dir / result_name(job)).write_bytes(b"glTF")
    half_written = store.results_dir / f".{result_name(recent)}.1234.part"
    half_written.write_bytes(b"glT")
    total = store.total_cost()
    store.close()

    sidecar = launcher.start("--store-max-days", "1", data_dir=data_dir)
    with sidecar.client() as client:
        reply = client.list_jobs(limit=500)
    kept = [entry["job"] for entry in reply["jobs"]]
    assert kept == [*failures[:KEPT_FAILURES], recent], "the newest failures stay, the oldest go"
    assert sorted(path.name for path in store.results_dir.iterdir()) == [result_name(recent)]
    assert reply["total_cost"] == pytest.approx(total) == 0.01 * len(failures) + 1.0


def test_a_full_disk_fails_the_job_leaves_nothing_half_written_and_the_service_goes_on(launcher, image):
    sidecar = launcher.spawn(max_file_bytes=DISK_BYTES)
    sidecar.wait_ready()
    with sidecar.client() as client:
        failed = run_job(client, unique_png(image), TOO_BIG_FOR_THE_DISK)[-1]
        assert list((sidecar.data_dir / "results").iterdir()) == []
        fine = run_job(client, unique_png(image))[-1]
        (listed,) = [entry for entry in client.list_results() if entry["job"] == failed.job]
    assert failed.type == "error", failed.header
    assert (failed.header["code"], failed.header["retryable"]) == ("storage_full", True)
    assert "disk is full" in failed.header["message"]
    assert listed["status"] == "failed" and listed["error_code"] == "storage_full"
    assert fine.type == "result"
    assert [path.name for path in (sidecar.data_dir / "results").iterdir()] == [result_name(fine.job)]
