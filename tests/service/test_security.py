"""Loopback by default; CurveZMQ keys for anything else, and then no answer without the server's key."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import zmq
import zmq.auth
from service_harness import QUICK, EventLog, run_job, unique_png
from sidecar_process import free_port

from shared.client import SidecarUnavailable
from sidecar.security import SecurityError, is_loopback


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("tcp://127.0.0.1:5571", True),
        ("tcp://127.8.0.1:5571", True),
        ("tcp://localhost:5571", True),
        ("tcp://[::1]:5571", True),
        ("tcp://0.0.0.0:5571", False),
        ("tcp://*:5571", False),
        ("tcp://192.168.1.20:5571", False),
        ("tcp://eth0:5571", False),
    ],
)
def test_only_loopback_addresses_count_as_loopback(endpoint, loopback):
    assert is_loopback(endpoint) is loopback


def test_an_endpoint_that_is_not_tcp_is_refused():
    with pytest.raises(SecurityError, match="tcp://HOST:PORT"):
        is_loopback("ipc:///tmp/sidecar")


def test_a_non_loopback_bind_without_keys_is_refused(launcher):
    sidecar = launcher.spawn(endpoint=f"tcp://0.0.0.0:{free_port()}")
    assert sidecar.process.wait(timeout=60) == 2
    assert "keygen" in sidecar.log()
    assert "Traceback" not in sidecar.log()


def test_with_curve_keys_only_a_client_with_the_server_key_gets_answers(launcher, tmp_path, image):
    keygen = subprocess.run(
        [sys.executable, "-m", "sidecar", "keygen", str(tmp_path / "keys")], capture_output=True, text=True
    )
    assert keygen.returncode == 0, keygen.stderr
    public_key, _ = zmq.auth.load_certificate(tmp_path / "keys" / "sidecar.key")
    assert public_key.decode() in keygen.stdout
    secret_file = tmp_path / "keys" / "sidecar.key_secret"
    assert secret_file.stat().st_mode & 0o077 == 0

    port = free_port()
    sidecar = launcher.spawn("--curve-secret-key", str(secret_file), endpoint=f"tcp://0.0.0.0:{port}")
    sidecar.endpoint = f"tcp://127.0.0.1:{port}"
    sidecar.wait_ready(server_public_key=public_key)
    with sidecar.client() as stranger, pytest.raises(SidecarUnavailable):
        stranger.hello(timeout=1.0)
    other_key = zmq.curve_keypair()[0]
    with sidecar.client(server_public_key=other_key) as impostor, pytest.raises(SidecarUnavailable):
        impostor.hello(timeout=1.0)
    with sidecar.client(server_public_key=public_key.decode()) as trusted:
        assert trusted.hello()["protocol"] == 1
        assert run_job(trusted, unique_png(image))[-1].type == "result"
    assert "Traceback" not in sidecar.log()


def test_a_sidecar_other_machines_reach_ignores_the_process_a_client_names(launcher, stand_in, tmp_path):
    public_key, secret_file = curve_keys(tmp_path / "keys")
    parent, client_process = stand_in(), stand_in()
    port = free_port()
    args = ("--curve-secret-key", str(secret_file), "--parent-pid", str(parent.pid))
    sidecar = launcher.spawn(*args, endpoint=f"tcp://0.0.0.0:{port}")
    sidecar.endpoint = f"tcp://127.0.0.1:{port}"
    sidecar.wait_ready(server_public_key=public_key)
    with sidecar.client(server_public_key=public_key, client_pid=client_process.pid) as client:
        assert client.hello()["protocol"] == 1
    parent.kill()
    parent.wait()
    assert sidecar.process.wait(timeout=30) == 0, "a process id from another machine names nothing here"
    assert client_process.poll() is None and f"process {client_process.pid}" not in sidecar.log()


def curve_keys(folder: Path) -> tuple[bytes, Path]:
    """A key pair made by `keygen`: the public key, and the secret key's file."""
    subprocess.run([sys.executable, "-m", "sidecar", "keygen", str(folder)], check=True, capture_output=True)
    return zmq.auth.load_certificate(folder / "sidecar.key")[0], folder / "sidecar.key_secret"


def answered(log: EventLog, job: str) -> bool:
    return log.events(job)[-1].type == "error"


def test_a_sidecar_other_machines_reach_shows_no_path_of_its_own(launcher, tmp_path, tiny_weights, image):
    public_key, secret_file = curve_keys(tmp_path / "keys")
    weights = tmp_path / "models" / "tiny"
    shutil.copytree(tiny_weights, weights)
    broken = tmp_path / "models" / "broken"
    shutil.copytree(tiny_weights, broken)
    (broken / "model.ckpt").write_bytes(b"not a checkpoint")
    heard: list[dict] = []
    for folder in (weights, broken):
        port = free_port()
        sidecar = launcher.spawn(
            "--curve-secret-key", str(secret_file), endpoint=f"tcp://0.0.0.0:{port}", weights=folder
        )
        sidecar.endpoint = f"tcp://127.0.0.1:{port}"
        sidecar.wait_ready(server_public_key=public_key)
        with sidecar.client(server_public_key=public_key) as client:
            log = EventLog(client)
            job = client.submit(unique_png(image), QUICK, deliver="path")
            log.until_done(job)
            if log.terminal(job).event.type == "result":
                (sidecar.data_dir / "results" / f"{job}.glb").unlink()
                client.fetch(job)
                log.wait(functools.partial(answered, log, job), "the answer to the fetch")
            heard += [client.hello(), client.status(), client.list_jobs()]
            heard += [event.header for event in log.events(job)]

    codes = {header.get("code") for header in heard}
    assert {"result_missing", "model_unavailable"} <= codes
    models = [header["model"] for header in heard if header.get("type") == "result"]
    assert models and all("[weights folder tiny]" in model for model in models)
    assert not any("path" in header for header in heard), "a path to the store is of no use elsewhere"
    text = json.dumps(heard)
    for folder in (tmp_path, Path.home(), Path(sys.prefix)):
        assert str(folder) not in text
