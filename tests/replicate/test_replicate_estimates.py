"""Estimates for Replicate: its price before any job has run there, then what its jobs took and cost."""

from __future__ import annotations

import pytest
from fake_replicate import TOKEN
from meshes import as_tripo_sr_on_replicate
from replicate_harness import SIDECAR_ARGS, start_sidecar
from service_harness import run_job, unique_png

from sidecar.backends.models import DEFAULT_PRICE_PER_SECOND
from sidecar.estimates import DEFAULT_REPLICATE_SECONDS

ON_REPLICATE = {"backend": "replicate"}


def test_replicate_estimates_start_from_its_price_then_follow_its_jobs(launcher, fake, image):
    fake.behaviour.mesh = as_tripo_sr_on_replicate()
    fake.behaviour.predict_time = 12.0
    sidecar = start_sidecar(launcher, fake.url, TOKEN, *SIDECAR_ARGS)
    with sidecar.client() as client:
        asked = client.estimate(ON_REPLICATE, count=10)
        before, before_policy = asked["replicate"], asked["policy"]
        result = run_job(client, unique_png(image), ON_REPLICATE)[-1]
        assert result.type == "result", result.header
        after = client.estimate(ON_REPLICATE, count=10)["replicate"]
        placed = client.estimate({"backend": "fastest", "budget": 0.1}, count=10)
    assert before["basis"] == "default" and "has not run a job yet" in before["how"]
    assert before["cost"] == pytest.approx(
        DEFAULT_PRICE_PER_SECOND * DEFAULT_REPLICATE_SECONDS["predict"], abs=1e-4
    )
    assert before["batch_cost"] == pytest.approx(10 * before["cost"], abs=1e-3)
    assert before["concurrency"] == 4
    assert before["batch_seconds"] == pytest.approx(3 * before["seconds"], abs=0.05)  # 10 jobs, 4 at once

    assert after["basis"] == "measured"
    assert after["cost"] == pytest.approx(12.0 * DEFAULT_PRICE_PER_SECOND, abs=1e-4) == result.header["cost"]
    assert after["seconds"] == pytest.approx(result.header["total_seconds"], abs=0.02)

    assert before_policy is None
    policy = placed["policy"]
    assert policy["backend"] == "fastest" and sum(policy["lanes"].values()) + policy["left"] == 10
    assert policy["lanes"].get("replicate", 0) == int(0.1 // after["cost"]), "as many as the budget pays for"
    assert policy["cost"] <= 0.1, policy
    assert policy["seconds"] > 0
