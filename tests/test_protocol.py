"""The protocol without a sidecar: framing, its refusals, job parameters, and the client's own time limits."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import fields, replace
from pathlib import Path

import pytest
import zmq

from shared.client import SidecarClient, SidecarUnavailable
from shared.protocol import (
    ERROR_CODES,
    MAX_HEADER_BYTES,
    PROTOCOL_VERSION,
    ProtocolError,
    decode,
    encode,
    is_job_id,
    new_job_id,
)
from sidecar.assets.options import AssetOptions
from sidecar.params import INTEGER_RANGES, parse_params
from sidecar.pipeline import GenerationParams

# Nothing listens here: the client must still answer within the time it was given.
NOWHERE = "tcp://127.0.0.1:9"


def header(**fields) -> bytes:
    return json.dumps({"v": PROTOCOL_VERSION, "type": "submit", **fields}).encode()


def test_a_message_survives_encoding_with_its_payloads_in_order():
    job = new_job_id()
    frames = encode("result", job, payloads={"glb": b"model", "preview": b"png"}, vertices=3)
    message = decode(frames)
    assert message.type == "result"
    assert message.job == job
    assert message.header["frames"] == ["glb", "preview"]
    assert message.header["vertices"] == 3
    assert message.payloads == {"glb": b"model", "preview": b"png"}


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([], "bad_header"),
        ([b"x" * (MAX_HEADER_BYTES + 1)], "header_too_large"),
        ([b"\xff\xfe"], "bad_header"),
        ([b'{"v": 1, "type": '], "bad_header"),
        ([b'{"v": 1, "type": "hello", "x": NaN}'], "bad_header"),
        ([b"[" * 100_000 + b"]" * 100_000], "header_too_large"),
        ([b"[" * 30_000 + b"]" * 30_000], "bad_header"),
        ([b"[1, 2]"], "bad_header"),
        ([b'{"type": "hello"}'], "bad_header"),
        ([b'{"v": 2, "type": "hello"}'], "unsupported_version"),
        ([b'{"v": 1}'], "bad_header"),
        ([header(job="../../etc/passwd")], "bad_header"),
        ([header(job=new_job_id().upper())], "bad_header"),
        ([header(frames="image")], "bad_header"),
        ([header(frames=["image", "image"]), b"a", b"b"], "bad_header"),
        ([header(frames=["image"])], "missing_payload"),
        ([header(), b"stray"], "bad_header"),
    ],
)
def test_malformed_messages_are_refused_with_a_code(frames, code):
    with pytest.raises(ProtocolError) as refused:
        decode(frames)
    assert refused.value.code == code
    assert str(refused.value)


def test_error_codes_say_whether_a_retry_can_help():
    assert ProtocolError("queue_full", "later").retryable
    assert not ProtocolError("image_damaged", "no").retryable
    with pytest.raises(ValueError):
        ProtocolError("no_such_code", "")
    retryable = {code for code, retry in ERROR_CODES.items() if retry}
    assert {"sidecar_lost", "interrupted", "shutting_down"} <= retryable


def test_job_ids_are_canonical_uuids():
    assert is_job_id(new_job_id())
    assert not is_job_id("not-a-uuid")
    assert not is_job_id(None)
    assert not is_job_id("{" + new_job_id() + "}")


def test_job_parameters_get_defaults_and_are_checked():
    params = parse_params({"resolution": 64, "backend": "auto"})
    assert params.generation == GenerationParams(resolution=64)
    assert params.to_wire()["backend"] == "auto"
    assert params.runs_on == "local"
    assert parse_params(None).generation == GenerationParams()
    wrong = [
        {"resolution": "high"}, {"resolution": 4}, {"resolution": True}, {"foreground_ratio": 0},
        {"threshold": float("inf")}, {"remove_background": 1}, {"sparse": "yes"}, {"colour": "red"}, [1],
        {"chunk_size": 512},
        {"texture": 1000}, {"texture": -512}, {"faces": 50}, {"faces": -1}, {"faces": 2.5}, {"smooth": 101},
        {"height": -1}, {"height": float("nan")}, {"min_piece": 1.5}, {"ground": "yes"}, {"cleanup": 0},
    ]  # fmt: skip
    for bad in wrong:
        with pytest.raises(ProtocolError) as refused:
            parse_params(bad)
        assert refused.value.code == "bad_parameter"
    with pytest.raises(ProtocolError) as refused:
        parse_params({"backend": "replicate"})
    assert refused.value.code == "backend_unavailable"


def test_policy_jobs_take_a_budget_a_deadline_and_a_batch_and_no_other_job_does():
    params = parse_params({"backend": "cheapest", "budget": 1, "deadline": 90, "batch": "props"})
    assert (params.policy, params.runs_on) == (True, "cheapest")
    assert (params.budget, params.deadline, params.batch) == (1.0, 90.0, "props")
    wire = params.to_wire()
    assert (wire["budget"], wire["deadline"], wire["batch"]) == (1.0, 90.0, "props")
    assert parse_params(wire) == params
    # On a peer it runs as a local job, which has none of them.
    assert parse_params(params.on_backend("local")) == replace(
        params, backend="local", budget=None, deadline=None, batch=None
    )
    fastest = parse_params({"backend": "fastest"})
    assert "budget" not in fastest.to_wire()
    assert fastest.cache_key("sha", "m") == parse_params({}).cache_key("sha", "m"), "the same model"
    wrong = [
        {"backend": "local", "budget": 1}, {"backend": "auto", "batch": "b"},
        {"backend": "fastest", "deadline": 60}, {"backend": "fastest", "budget": -1},
        {"backend": "fastest", "budget": "1"}, {"backend": "fastest", "budget": float("nan")},
        {"backend": "fastest", "budget": True}, {"backend": "cheapest", "deadline": float("inf")},
        {"backend": "fastest", "batch": ""}, {"backend": "fastest", "batch": "x" * 65},
        {"backend": "fastest", "batch": 3}, {"backend": "slowest"},
    ]  # fmt: skip
    for bad in wrong:
        with pytest.raises(ProtocolError) as refused:
            parse_params(bad)
        assert refused.value.code == "bad_parameter", bad


def test_the_asset_options_travel_with_the_job():
    params = parse_params({"texture": 2048, "faces": 20_000, "ground": True, "height": 1.8, "cleanup": False})
    assert params.assets == AssetOptions(cleanup=False, faces=20_000, texture=2048, ground=True, height=1.8)
    assert params.to_wire()["texture"] == 2048 and params.to_wire()["min_piece"] == AssetOptions().min_piece
    assert parse_params({"height": 2}).assets.height == 2.0
    assert parse_params({"texture": 1024}).cache_key("sha", "model") != parse_params({}).cache_key(
        "sha", "model"
    )


def test_every_whole_number_parameter_has_bounds():
    whole_numbers = {
        field.name
        for field in (*fields(GenerationParams), *fields(AssetOptions))
        if type(field.default) is int
    }
    assert whole_numbers == set(INTEGER_RANGES)


def test_the_cache_key_ignores_the_chunk_size_but_not_the_model_or_the_image():
    small_chunks = parse_params({"chunk_size": 4096})
    large_chunks = parse_params({"chunk_size": 65536})
    assert small_chunks.cache_key("sha", "model") == large_chunks.cache_key("sha", "model")
    assert small_chunks.cache_key("sha", "model") != small_chunks.cache_key("sha", "other model")
    assert small_chunks.cache_key("sha", "model") != small_chunks.cache_key("other sha", "model")
    assert parse_params({"threshold": 20}).cache_key("sha", "model") != small_chunks.cache_key("sha", "model")


def test_a_blocking_request_gives_up_within_its_timeout():
    with SidecarClient(NOWHERE) as client:
        started = time.monotonic()
        with pytest.raises(SidecarUnavailable) as unavailable:
            client.hello(timeout=0.3)
        assert time.monotonic() - started < 1.0
    assert unavailable.value.retryable
    assert unavailable.value.code == "sidecar_unavailable"


def test_a_silent_sidecar_is_reported_lost_once_per_job_after_the_heartbeat_timeout():
    with SidecarClient(NOWHERE, heartbeat_timeout=0.3) as client:
        started = time.monotonic()
        jobs = {client.submit(b"png"), client.submit(b"png")}  # never blocks, even with no one listening
        assert client.poll() == []
        events = client.poll(timeout=5.0)
        waited = time.monotonic() - started
        assert 0.3 <= waited < 2.0
        assert {event.job for event in events} == jobs
        assert {(event.type, event.header["code"], event.header["retryable"]) for event in events} == {
            ("error", "sidecar_lost", True)
        }
        assert client.active_jobs == set()
        assert client.poll(timeout=0.5) == []


def test_a_client_refuses_a_job_id_that_is_not_a_uuid():
    with SidecarClient(NOWHERE) as client, pytest.raises(ValueError):
        client.submit(b"png", job_id="my-job")


def test_the_shared_package_works_vendored_inside_another_package(tmp_path):
    # The add-on ships shared/ as `<addon>.shared` inside Blender's Python: no sidecar, no torch, and no
    # absolute `shared` import that would only work here, where the project is installed.
    shutil.copytree(Path(__file__).resolve().parents[1] / "shared", tmp_path / "addon" / "shared")
    (tmp_path / "addon" / "__init__.py").write_text("")
    check = (
        "import sys; import addon.shared.client; "
        "print(sorted({name.split('.')[0] for name in sys.modules} & {'shared', 'sidecar', 'torch'}))"
    )
    done = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("header", "complaint"),
    [
        ({"v": True, "type": "hello"}, '"v" must be the integer 1'),
        ({"v": 1.0, "type": "hello"}, '"v" must be the integer 1'),
        ({"v": "1", "type": "hello"}, '"v" must be the integer 1'),
        ({"v": 1, "type": "hello", "request_id": "x" * 65}, '"request_id" must be a string of 1 to 64'),
        ({"v": 1, "type": "hello", "request_id": 7}, '"request_id" must be a string of 1 to 64'),
        ({"v": 1, "type": "hello", "request_id": ""}, '"request_id" must be a string of 1 to 64'),
    ],
)
def test_a_version_that_is_not_the_integer_1_or_a_bad_request_id_is_a_bad_header(header, complaint):
    with pytest.raises(ProtocolError) as refused:
        decode([json.dumps(header).encode()])
    assert refused.value.code == "bad_header"
    assert complaint in str(refused.value)
    assert decode([json.dumps({"v": 1, "type": "hello", "request_id": "x" * 64}).encode()]).type == "hello"


def test_job_events_that_arrive_with_a_reply_are_kept_for_poll(monkeypatch):
    # The cause of a flaky service test: the reply to a blocking request came in one batch with the job's
    # last events, and everything received after the reply was dropped.
    request_id = uuid.uuid4()
    monkeypatch.setattr(uuid, "uuid4", lambda: request_id)
    with zmq.Context() as context, context.socket(zmq.ROUTER) as sidecar:
        port = sidecar.bind_to_random_port("tcp://127.0.0.1")
        with SidecarClient(f"tcp://127.0.0.1:{port}") as client:
            job = client.submit(b"png", job_id=new_job_id())
            peer = sidecar.recv_multipart()[0]
            # The reply and the job's last events are on their way before the client asks.
            sidecar.send_multipart([peer, encode("status", request_id=request_id.hex, jobs=[])[0]])
            sidecar.send_multipart([peer, encode("progress", job, stage="export", fraction=1.0)[0]])
            sidecar.send_multipart([peer, encode("cancelled", job)[0]])
            assert client.status()["jobs"] == []
            events = []
            # those that came with the reply are kept; the rest may still be on their way: wait for the last
            while not events or events[-1].type != "cancelled":
                arrived = client.poll(timeout=10.0)
                assert arrived, f"the job's last events never arrived; had {events}"
                events += arrived
    assert [(event.type, event.job) for event in events] == [("progress", job), ("cancelled", job)]


@pytest.mark.parametrize("client_pid", [4242, None])
def test_a_client_names_its_process_in_hello_when_it_has_one(client_pid):
    with zmq.Context() as context, context.socket(zmq.ROUTER) as sidecar:
        port = sidecar.bind_to_random_port("tcp://127.0.0.1")
        with SidecarClient(f"tcp://127.0.0.1:{port}", client_pid=client_pid) as client:
            with pytest.raises(SidecarUnavailable):  # nobody answers; the request went out all the same
                client.hello(timeout=0.01)
            assert sidecar.poll(10_000), "the hello never arrived"
            hello = json.loads(sidecar.recv_multipart()[1])
    assert hello["type"] == "hello"
    assert hello.get("client_pid", "absent") == (client_pid or "absent")
