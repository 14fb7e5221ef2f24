"""Replicate jobs through a running sidecar, its real `replicate` client talking to the fake Replicate."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from fake_replicate import TOKEN
from glb_reader import read_glb
from gltf_validator import assert_valid
from meshes import (
    OURS,
    as_tripo_sr_on_replicate,
    assert_in_our_frame,
    native_mesh,
    textured_ball_glb,
    textured_glb,
    turned,
)
from replicate_harness import REQUEST_TIMEOUT, SIDECAR_ARGS, start_sidecar
from service_harness import EventLog, run_job, unique_png

from sidecar.assets.colour import srgb_to_linear
from sidecar.backends import replicate_settings
from sidecar.backends.models import DEFAULT_PRICE_PER_SECOND, TRELLIS_VERSION, TRIPO_SR_VERSION
from sidecar.pipeline import STAGES

ON_REPLICATE = {"backend": "replicate"}
# What a Replicate job with the default parameters goes through: its vertex colours are kept.
CLOUD_STAGES = ["upload", "starting", "predict", "download", "convert", "cleanup", "export"]


@pytest.fixture
def tripo_sr(fake):
    """The fake answers as camenduru/tripo-sr does: one URL of a GLB in its mirrored frame."""
    fake.behaviour.mesh = as_tripo_sr_on_replicate()
    return fake


def replicate_job(client, image, **params):
    return run_job(client, unique_png(image), {**ON_REPLICATE, **params})


def error_of(events) -> dict:
    assert events[-1].type == "error", events[-1].header
    return events[-1].header


def test_hello_offers_replicate_its_models_and_its_stages(client):
    hello = client.hello()
    assert hello["backends"] == ["local", "replicate"]
    assert hello["stages"] == list(dict.fromkeys([*STAGES, *replicate_settings.STAGES]))
    offered = hello["replicate"]
    assert offered["available"] and offered["problem"] is None and offered["concurrency"] == 4
    assert offered["models"] == ["tripo-sr", "trellis", "hunyuan3d-2", "hunyuan-official", "spec-colours"]


def test_a_job_uploads_the_image_follows_the_prediction_and_returns_its_cost(
    client, tripo_sr, image, tmp_path
):
    picture = unique_png(image)
    events = run_job(client, picture, ON_REPLICATE)
    result = events[-1]
    assert result.type == "result", result.header
    header = result.header
    assert header["backend"] == "replicate" and header["device"] == "Nvidia A100 (80GB)"
    assert header["model"] == f"replicate:camenduru/tripo-sr:{TRIPO_SR_VERSION}"
    assert header["metrics"]["predict_time"] == 28.0
    assert header["cost"] == pytest.approx(28.0 * DEFAULT_PRICE_PER_SECOND)  # about $0.04
    (prediction_id,) = tripo_sr.predictions
    assert header["prediction"] == prediction_id
    assert set(header["stage_seconds"]) == set(CLOUD_STAGES)
    assert header["glb_bytes"] == len(result.payload) and header["vertices"] == 8
    assert_valid(result.payload, folder=tmp_path)

    # Progress follows the prediction: upload, Replicate starting the model, the model at work, the file.
    progress = [
        (event.header["stage"], event.header["fraction"]) for event in events if event.type == "progress"
    ]
    stages = [stage for stage, _ in progress if stage != "queued"]
    assert list(dict.fromkeys(stages)) == CLOUD_STAGES
    order = ["queued", *CLOUD_STAGES]
    assert progress == sorted(progress, key=lambda step: (order.index(step[0]), step[1]))
    assert max(fraction for stage, fraction in progress if stage == "predict" and fraction < 1.0) > 0.0

    assert tripo_sr.uploads == [picture]
    (created,) = tripo_sr.created
    assert created["path"] == "/v1/predictions" and created["body"]["version"] == TRIPO_SR_VERSION
    inputs = created["body"]["input"]
    assert inputs == {
        "image_path": inputs["image_path"],
        "do_remove_background": True,
        "foreground_ratio": 0.85,
    }
    assert inputs["image_path"].startswith(f"{tripo_sr.url}/v1/files/")
    assert tripo_sr.authorizations == {f"Bearer {TOKEN}"}


def test_the_mirror_of_tripo_sr_on_replicate_is_undone(client, tripo_sr, image):
    # Served over plain http: the client leaves the URL a string, and the sidecar downloads it itself.
    tripo_sr.behaviour.serve_over = "http"
    result = replicate_job(client, image)[-1]
    assert result.type == "result", result.header
    assert_in_our_frame(result.payload)
    assert tripo_sr.download_authorizations == [None], "the token goes to Replicate's API only"


def test_the_same_job_again_comes_from_the_store_at_no_cost(client, tripo_sr, image):
    picture = unique_png(image)
    first = run_job(client, picture, ON_REPLICATE)[-1]
    again = run_job(client, picture, {**ON_REPLICATE, "resolution": 512})[-1]  # Replicate ignores it
    assert again.header["from_store"] and again.header["source_job"] == first.job
    assert again.header["cost"] == 0.0 and again.payload == first.payload
    assert len(tripo_sr.created) == 1


def test_list_shows_what_all_jobs_cost(client, tripo_sr, image):
    replicate_job(client, image)
    reply = client.list_jobs(limit=500)
    costs = [job["cost"] for job in reply["jobs"] if job["cost"] is not None]
    assert costs and reply["total_cost"] == pytest.approx(sum(costs))


def test_a_failed_prediction_says_why_with_the_end_of_its_log_and_is_paid_for(client, tripo_sr, image):
    tripo_sr.behaviour.outcome = "failed"
    error = error_of(replicate_job(client, image))
    assert error["code"] == "prediction_failed" and error["retryable"] is False
    assert "camenduru/tripo-sr failed on Replicate: CUDA out of memory" in error["message"]
    assert "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB" in error["message"]  # the log tail
    (listed,) = [job for job in client.list_results() if job["job"] == error["job"]]
    assert listed["cost"] == pytest.approx(28.0 * DEFAULT_PRICE_PER_SECOND)


def test_an_account_without_credit_is_an_error_that_says_what_to_do(client, tripo_sr, image):
    tripo_sr.behaviour.create_errors = [402]
    error = error_of(replicate_job(client, image))
    assert (error["code"], error["retryable"]) == ("billing_required", False)
    assert "replicate.com/account/billing" in error["message"]
    assert not tripo_sr.predictions


def test_a_refused_token_is_an_error_and_hello_then_says_replicate_is_unusable(launcher, tripo_sr, image):
    # A sidecar of its own: it stops using Replicate for good, and the shared one must not.
    sidecar = start_sidecar(launcher, tripo_sr.url, "r8_SomeoneElsesToken", *SIDECAR_ARGS)
    with sidecar.client() as client:
        error = error_of(replicate_job(client, image))
        hello = client.hello()
        refused = replicate_job(client, image)
    assert (error["code"], error["retryable"]) == ("token_rejected", False)
    assert "REPLICATE_API_TOKEN" in error["message"]
    assert hello["backends"] == ["local"] and "upload" not in hello["stages"]
    replicate = hello["replicate"]
    assert (replicate["available"], replicate["problem_code"]) == (False, "token_rejected")
    assert "REPLICATE_API_TOKEN" in replicate["problem"]
    assert [event.type for event in refused] == ["error"], "refused at the door: nothing more is sent there"
    assert refused[0].header["code"] == "token_rejected"
    assert not tripo_sr.predictions


def test_while_rate_limited_it_waits_and_tries_again(client, tripo_sr, image):
    tripo_sr.behaviour.create_errors = [429, 429]  # each asks to wait a second
    started = time.monotonic()
    events = replicate_job(client, image)
    assert events[-1].type == "result", events[-1].header
    assert time.monotonic() - started >= 2.0
    assert len(tripo_sr.created) == 3 and len(tripo_sr.predictions) == 1


def predicting(log: EventLog, job: str) -> bool:
    return any(event.header.get("stage") == "predict" for event in log.events(job))


def listed(client, job: str) -> dict:
    (entry,) = [entry for entry in client.list_results(limit=500) if entry["job"] == job]
    return entry


def test_cancel_mid_prediction_cancels_it_on_replicate(client, tripo_sr, image):
    tripo_sr.behaviour.outcome = "endless"
    log = EventLog(client)
    job = client.submit(unique_png(image), ON_REPLICATE)
    log.wait(lambda: predicting(log, job), "the prediction at work")
    asked = time.monotonic()
    client.cancel(job)
    log.until_done(job)
    assert log.terminal(job).event.type == "cancelled"
    assert log.terminal(job).at - asked < 2.0
    assert tripo_sr.cancelled == list(tripo_sr.predictions)


def test_the_prediction_id_is_recorded_as_soon_as_the_prediction_exists(client, tripo_sr, image):
    tripo_sr.behaviour.outcome = "endless"
    log = EventLog(client)
    job = client.submit(unique_png(image), ON_REPLICATE)
    log.wait(lambda: predicting(log, job), "the prediction at work")
    running = listed(client, job)  # should the sidecar die now, its store still names what to pay for
    client.cancel(job)
    log.until_done(job)
    (prediction_id,) = tripo_sr.predictions
    assert (running["status"], running["prediction"]) == ("running", prediction_id)


@pytest.mark.parametrize("reported", [True, False], ids=["metrics", "own clock"])
def test_a_cancelled_prediction_keeps_its_id_and_its_cost_and_the_total_counts_it(
    client, tripo_sr, image, reported
):
    tripo_sr.behaviour.outcome = "endless"
    tripo_sr.behaviour.bill_cancelled = reported
    log = EventLog(client)
    job = client.submit(unique_png(image), ON_REPLICATE)
    log.wait(lambda: predicting(log, job), "the prediction at work")
    client.cancel(job)
    log.until_done(job)
    cancelled = log.terminal(job).event.header
    (prediction_id,) = tripo_sr.predictions
    assert log.terminal(job).event.type == "cancelled"
    assert (cancelled["prediction"], cancelled["cost_estimated"]) == (prediction_id, not reported)
    if reported:  # what Replicate bills
        assert cancelled["cost"] == pytest.approx(28.0 * DEFAULT_PRICE_PER_SECOND)
    else:  # the seconds the sidecar saw it predict: some, and far from the 28 s a whole run takes
        assert 0 < cancelled["cost"] < 28.0 * DEFAULT_PRICE_PER_SECOND
    entry = listed(client, job)
    assert (entry["status"], entry["prediction"]) == ("cancelled", prediction_id)
    assert (entry["cost"], entry["cost_estimated"]) == (cancelled["cost"], not reported)
    reply = client.list_jobs(limit=500)
    assert reply["total_cost"] == pytest.approx(sum(job["cost"] or 0 for job in reply["jobs"]))


@pytest.mark.parametrize("silent", ["upload", "poll"])
def test_a_replicate_that_stops_answering_ends_the_job_after_one_timeout(client, tripo_sr, image, silent):
    tripo_sr.behaviour.hang = silent
    log = EventLog(client)
    job = client.submit(unique_png(image), ON_REPLICATE)
    log.until_done(job)
    error = error_of(log.events(job))
    assert (error["code"], error["retryable"]) == ("remote_timeout", True)
    (held_since,) = tripo_sr.held_since
    waited = float(re.search(r"no reply after ([\d.]+) s of waiting", error["message"]).group(1))
    assert REQUEST_TIMEOUT <= waited < 2 * REQUEST_TIMEOUT and "--replicate-timeout" in error["message"]
    assert log.terminal(job).at - held_since < 2 * REQUEST_TIMEOUT, "one timeout, not one for each request"
    if silent == "poll":  # a prediction that may still run is cancelled, and what it cost so far is kept
        (prediction_id,) = tripo_sr.predictions
        log.wait(lambda: tripo_sr.cancelled == [prediction_id], "the cancel on Replicate")
        assert error["prediction"] == prediction_id and error["cost_estimated"] is True
    else:
        assert not tripo_sr.predictions and "cost" not in error


def test_a_prediction_that_runs_too_long_is_cancelled_and_keeps_its_id_and_cost(client, tripo_sr, image):
    tripo_sr.behaviour.outcome = "endless"
    error = error_of(replicate_job(client, image))
    assert error["code"] == "remote_timeout" and "--replicate-job-timeout" in error["message"]
    (prediction_id,) = tripo_sr.predictions
    assert tripo_sr.cancelled == [prediction_id]
    assert (error["prediction"], error["cost_estimated"]) == (prediction_id, True) and error["cost"] > 0
    entry = listed(client, error["job"])
    assert (entry["prediction"], entry["cost"]) == (prediction_id, error["cost"])


def test_a_batch_of_six_runs_four_predictions_at_a_time(client, tripo_sr, image):
    tripo_sr.behaviour.processing_polls = 10
    log = EventLog(client)
    jobs = [client.submit(unique_png(image), ON_REPLICATE) for _ in range(6)]
    log.until_done(*jobs)
    assert {log.terminal(job).event.type for job in jobs} == {"result"}
    assert len(tripo_sr.predictions) == 6
    assert 1 < tripo_sr.peak_in_flight <= 4


def test_trellis_returns_a_dict_with_a_textured_glb_that_stays_textured(client, fake, image, tmp_path):
    fake.behaviour.mesh = textured_glb()
    fake.behaviour.output = {"no_background_images": None, "color_video": None, "model_file": "{mesh}"}
    result = replicate_job(client, image, replicate_model="trellis")[-1]
    assert result.type == "result", result.header
    assert result.header["model"] == f"replicate:firtoz/trellis:{TRELLIS_VERSION}"
    (created,) = fake.created
    inputs = created["body"]["input"]
    assert created["body"]["version"] == TRELLIS_VERSION
    assert inputs["images"] == [inputs["images"][0]] and inputs["generate_model"] is True
    glb = read_glb(result.payload)
    vertices, uv, texture = glb.attribute("POSITION"), glb.attribute("TEXCOORD_0"), glb.texture
    assert glb.attribute("COLOR_0") is None and texture.shape == (4, 4, 3), "the texture came through"
    (material,) = glb.tree["materials"]
    assert material["pbrMetallicRoughness"]["baseColorTexture"] == {"index": 0}
    up = vertices[:, 1] > vertices[:, 1].mean()
    texels = texture[(uv[:, 1] * 4).astype(int), (uv[:, 0] * 4).astype(int)]
    assert (texels[up] == [255, 0, 0]).all() and (texels[~up] == [0, 0, 255]).all()
    assert_valid(result.payload, folder=tmp_path)


def test_a_textured_cloud_model_is_simplified_rebaked_and_grounded_as_asked(client, fake, image, tmp_path):
    fake.behaviour.mesh = textured_ball_glb()
    fake.behaviour.output = {"model_file": "{mesh}"}
    result = replicate_job(client, image, replicate_model="trellis", faces=400, ground=True)[-1]
    assert result.type == "result", result.header
    assert {"decimate", "unwrap", "bake", "place"} <= set(result.header["stage_seconds"])
    glb = read_glb(result.payload)
    vertices, uv, texture = glb.attribute("POSITION"), glb.attribute("TEXCOORD_0"), glb.texture
    assert abs(len(glb.faces) - 400) <= 8 and result.header["faces"] == len(glb.faces)
    assert texture.shape == (512, 512, 3), "re-baked at the smallest size that holds its 64 x 64 texture"
    low, high = vertices.min(0), vertices.max(0)
    np.testing.assert_allclose([low[1], (low[0] + high[0]) / 2, (low[2] + high[2]) / 2], 0.0, atol=1e-6)
    # the original's look, sampled through its mesh: red above, blue below (away from the equator)
    height = vertices[:, 1] / high[1]
    texels = texture[(uv[:, 1] * 512).astype(int), (uv[:, 0] * 512).astype(int)].astype(int)
    assert (np.abs(texels[height > 0.7] - [255, 0, 0]) <= 2).all()
    assert (np.abs(texels[height < 0.3] - [0, 0, 255]) <= 2).all()
    assert_valid(result.payload, folder=tmp_path)


def test_a_model_from_the_models_file_runs_as_configured(client, fake, image):
    fake.behaviour.mesh = textured_glb()
    fake.behaviour.output = {"mesh": "{mesh}"}
    fake.behaviour.serve_over = "http"
    result = replicate_job(client, image, replicate_model="hunyuan-official", remove_background=False)[-1]
    assert result.type == "result", result.header
    (created,) = fake.created
    assert created["path"] == "/v1/models/tencent/hunyuan3d-2-official/predictions"
    inputs = created["body"]["input"]
    assert inputs == {"image": inputs["image"], "remove_background": False, "octree_resolution": 256}
    assert result.header["device"] == "Nvidia H100"
    assert result.header["cost"] == pytest.approx(28.0 * 0.002)
    assert np.ptp(read_glb(result.payload).attribute("POSITION"), axis=0).max() > 0.5


def test_an_unknown_replicate_model_is_refused_at_the_door(client, fake, image):
    events = replicate_job(client, image, replicate_model="sf3d")
    assert [event.type for event in events] == ["error"]
    assert events[0].header["code"] == "bad_parameter" and "trellis" in events[0].header["message"]


@pytest.mark.parametrize(("model", "space"), [("hunyuan-official", "srgb"), ("spec-colours", "linear")])
def test_what_a_models_vertex_colours_hold_is_a_setting_of_its_entry(client, fake, image, model, space):
    mesh = turned(native_mesh(), OURS)
    fake.behaviour.mesh = mesh.export(file_type="glb")
    fake.behaviour.output = {"mesh": "{mesh}"}
    result = replicate_job(client, image, replicate_model=model)[-1]
    assert result.type == "result", result.header
    stored = mesh.visual.vertex_colors[:, :3] / 255.0
    expected = srgb_to_linear(stored) if space == "srgb" else stored
    colours = read_glb(result.payload).attribute("COLOR_0")[:, :3]
    assert np.abs(colours - expected).max() <= 1e-4
