"""`auto`: local first, Replicate when the local run cannot work; sidecars without a token or a network."""

from __future__ import annotations

from fake_replicate import TOKEN
from meshes import as_tripo_sr_on_replicate, assert_in_our_frame
from replicate_harness import SIDECAR_ARGS, start_sidecar
from service_harness import QUICK, run_job, unique_png
from sidecar_process import free_port

# Above the sidecars' --max-local-resolution of 64: locally, it runs out of memory.
TOO_LARGE = {"backend": "auto", "resolution": 128}


def test_auto_moves_a_job_that_runs_out_of_memory_locally_to_replicate(client, fake, image):
    fake.behaviour.mesh = as_tripo_sr_on_replicate()
    picture = unique_png(image)
    result = run_job(client, picture, TOO_LARGE)[-1]
    assert result.type == "result", result.header
    header = result.header
    assert header["backend"] == "replicate" and header["params"]["backend"] == "auto"
    failover = header["failover"]
    assert (failover["from"], failover["to"], failover["code"]) == ("local", "replicate", "out_of_memory")
    assert "--max-local-resolution" in failover["message"]
    assert header["cost"] > 0 and len(fake.predictions) == 1
    assert_in_our_frame(result.payload)

    again = run_job(client, picture, TOO_LARGE)[-1]
    assert again.header["from_store"] and again.header["source_job"] == result.job
    assert len(fake.predictions) == 1, "the store answers: no second prediction to pay for"


def test_auto_runs_locally_when_it_can(client, fake, image):
    result = run_job(client, unique_png(image), {**QUICK, "backend": "auto"})[-1]
    assert result.type == "result", result.header
    assert (result.header["backend"], result.header["cost"], result.header["failover"]) == (
        "local",
        None,
        None,
    )
    assert set(result.header["stage_seconds"]) == {
        "preprocess",
        "encode",
        "density",
        "cleanup",
        "colour",
        "export",
    }
    assert not fake.created


def test_without_a_token_auto_gives_the_local_error_and_replicate_is_refused(launcher, fake, image):
    sidecar = start_sidecar(launcher, fake.url, None, *SIDECAR_ARGS)
    with sidecar.client() as client:
        hello = client.hello()
        assert hello["backends"] == ["local"]
        assert not hello["replicate"]["available"]
        assert "REPLICATE_API_TOKEN" in hello["replicate"]["problem"]

        error = run_job(client, unique_png(image), TOO_LARGE)[-1].header
        assert error["code"] == "out_of_memory"
        assert error["message"].startswith("A resolution of 128 needs more memory than this sidecar may use")

        refused = run_job(client, unique_png(image), {"backend": "replicate"})
    assert [event.type for event in refused] == ["error"]
    assert refused[0].header["code"] == "backend_unavailable"
    assert "set REPLICATE_API_TOKEN" in refused[0].header["message"]
    assert not fake.authorizations, "nothing went to Replicate"


def test_replicate_out_of_reach_is_network_down(launcher, image):
    sidecar = start_sidecar(launcher, f"http://127.0.0.1:{free_port()}", TOKEN, *SIDECAR_ARGS)
    with sidecar.client() as client:
        error = run_job(client, unique_png(image), TOO_LARGE)[-1].header
    assert (error["code"], error["retryable"]) == ("network_down", True)
    assert error["message"].startswith("Cannot reach Replicate at http://127.0.0.1:")
    assert "It went to Replicate because it ran out of memory locally" in error["message"]
