"""Loopback by default; CurveZMQ keys for anything else, and then no answer without the server's key."""

from __future__ import annotations

import subprocess
import sys

import pytest
import zmq
import zmq.auth
from service_harness import run_job, unique_png
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
