"""The job store keeps what Replicate jobs cost, also in a store an earlier release made."""

from __future__ import annotations

import sqlite3

import pytest

from sidecar.store import ADDED_COLUMNS, SCHEMA, JobRecord, Store

JOB, OTHER = "1b4e28ba-2fa1-41d2-883f-0016d3cca427", "5d9c41a7-0b64-4f3c-9d7e-6f2f3a1b8c90"


def test_a_store_from_before_replicate_gains_its_columns_and_counts_every_cost(tmp_path):
    earlier = "\n".join(
        line for line in SCHEMA.splitlines() if line.strip().split(" ")[0] not in ADDED_COLUMNS
    )
    with sqlite3.connect(tmp_path / "jobs.sqlite") as database:
        database.executescript(earlier)
    store = Store(tmp_path)
    try:
        record = JobRecord(
            JOB, "running", "sha", "mug.png", {}, "key", "replicate:m:v", "replicate", created_at=1.0
        )
        store.add(record)
        store.fail(
            JOB,
            "prediction_failed",
            "It failed.",
            cost=0.0392,
            metrics={"predict_time": 28.0},
            prediction="p1",
        )
        failed = store.get(JOB)
        assert (failed.cost, failed.metrics, failed.prediction) == (0.0392, {"predict_time": 28.0}, "p1")

        store.add(JobRecord(OTHER, "running", "sha", None, {}, "key2", "m", "replicate", created_at=2.0))
        store.finish(
            OTHER, "other.glb", cost=0.05, stage_seconds={"predict": 1.0}, failover={"code": "out_of_memory"}
        )
        reused = store.reuse(store.get(OTHER), "7c0d3a4e-6f1b-4d2a-9e8f-3b5c7d9e1f20", None, {})
        assert reused.cost == 0.0 and reused.failover == {"code": "out_of_memory"}
        assert store.total_cost() == pytest.approx(0.0392 + 0.05)
    finally:
        store.close()
