"""Bad images and malformed messages: each gets an error with its own code, and the sidecar carries on."""

from __future__ import annotations

import io
import json
import random

import pytest
from PIL import Image
from service_harness import QUICK, run_job, unique_png

from shared.protocol import encode, new_job_id

MAX_IMAGE_BYTES = 1_000_000
MAX_IMAGE_PIXELS = 300_000
SIDECAR_ARGS = ("--max-image-bytes", str(MAX_IMAGE_BYTES), "--max-image-pixels", str(MAX_IMAGE_PIXELS))


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


BAD_IMAGES = {
    "image_damaged": lambda good: good[: len(good) // 2],  # a truncated PNG
    "image_unrecognized": lambda good: random.Random(0).randbytes(5000),
    "image_empty": lambda good: b"",
    "image_too_large": lambda good: png(Image.new("RGB", (600, 600), "white")),
    "no_foreground": lambda good: png(Image.new("RGBA", (64, 64), (0, 0, 0, 0))),
    "payload_too_large": lambda good: random.Random(1).randbytes(MAX_IMAGE_BYTES + 1),
}
JOB = new_job_id()
MALFORMED_MESSAGES = {
    "unknown_type": encode("frobnicate", request_id="r1"),
    "unsupported_version": [json.dumps({"v": 2, "type": "hello", "request_id": "r1"}).encode()],
    "bad_header": [b'{"v": 1, "type": "hello", '],
    "header_too_large": [encode("hello", padding="x" * 70_000)[0]],
    "missing_payload": [json.dumps({"v": 1, "type": "submit", "job": JOB, "frames": ["image"]}).encode()],
    "bad_parameter": encode("submit", JOB, payloads={"image": b"png"}, params={"resolution": "high"}),
    "backend_unavailable": encode("submit", JOB, payloads={"image": b"png"}, params={"backend": "replicate"}),
    "unknown_job": [encode("fetch", JOB)[0]],
}


def test_each_kind_of_bad_input_has_its_own_code():
    codes = [*BAD_IMAGES, *MALFORMED_MESSAGES, "job_conflict"]
    assert len(set(codes)) == len(codes)


@pytest.mark.parametrize("code", BAD_IMAGES)
def test_a_bad_image_is_refused_and_the_next_job_runs(client, image, code):
    events = run_job(client, BAD_IMAGES[code](image), QUICK)
    error = events[-1]
    assert error.type == "error"
    assert (error.header["code"], error.header["retryable"]) == (code, False)
    assert len(error.header["message"]) > 20
    assert run_job(client, unique_png(image))[-1].type == "result"


@pytest.mark.parametrize("code", MALFORMED_MESSAGES)
def test_a_malformed_message_is_answered_with_an_error_and_the_next_job_runs(raw_peer, client, image, code):
    raw_peer.send(*MALFORMED_MESSAGES[code])
    reply = raw_peer.receive()
    assert reply.type == "error"
    assert reply.header["code"] == code
    assert reply.header["message"]
    echoed = code in ("unknown_type", "unsupported_version")  # the others carry no request_id
    assert reply.header.get("request_id") == ("r1" if echoed else None)
    assert run_job(client, unique_png(image))[-1].type == "result"


def test_a_frame_that_is_not_utf8_json_gets_bad_header(raw_peer, client, image):
    raw_peer.send(b"\xff\xfe\x00garbage", b"more")
    assert raw_peer.receive().header["code"] == "bad_header"
    assert run_job(client, unique_png(image))[-1].type == "result"


def test_a_job_id_reused_with_other_parameters_is_a_conflict(client, image):
    picture, job = unique_png(image), new_job_id()
    assert run_job(client, picture, {"resolution": 32}, job_id=job)[-1].type == "result"
    conflict = run_job(client, picture, {"resolution": 40}, job_id=job)[-1]
    assert (conflict.type, conflict.header["code"]) == ("error", "job_conflict")
    other_image = run_job(client, unique_png(image), {"resolution": 32}, job_id=job)[-1]
    assert other_image.header["code"] == "job_conflict"
    assert run_job(client, unique_png(image))[-1].type == "result"


@pytest.mark.parametrize(
    "fields",
    [{"v": 1.0}, {"v": True}, {"v": "1"}, {"v": 1, "request_id": "r" * 65}, {"v": 1, "request_id": 7}],
    ids=["v float", "v true", "v string", "request_id too long", "request_id not a string"],
)
def test_a_version_that_is_not_the_integer_1_or_a_bad_request_id_gets_bad_header(raw_peer, fields):
    raw_peer.send(json.dumps({"type": "hello", "job": None, **fields}).encode())
    reply = raw_peer.receive()
    assert (reply.type, reply.header["code"]) == ("error", "bad_header")
    assert "request_id" not in reply.header, "an id that is not one is not echoed"


def test_a_cancel_of_an_unknown_job_always_gets_a_reply(raw_peer):
    for job in (new_job_id(), new_job_id(), JOB):
        raw_peer.send(*encode("cancel", job))
        reply = raw_peer.receive()
        assert (reply.type, reply.job, reply.header["code"]) == ("error", job, "unknown_job")


@pytest.mark.parametrize(
    "pid", [0, -5, 2**31, True, "4242", 4.5], ids=["zero", "negative", "too large", "true", "text", "float"]
)
def test_a_hello_whose_client_pid_is_no_process_id_gets_bad_parameter(raw_peer, pid):
    raw_peer.send(*encode("hello", request_id="r1", client_pid=pid))
    reply = raw_peer.receive()
    assert (reply.type, reply.header["code"], reply.header["request_id"]) == ("error", "bad_parameter", "r1")
    assert '"client_pid"' in reply.header["message"]
