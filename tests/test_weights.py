"""Where weights come from: the hub on first use (a loopback stand-in here), then its cache; a folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from fake_hub import FakeHub

from sidecar.triposr.errors import WeightsUnavailable
from sidecar.triposr.weights import local_weights, verify_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, hf_home: Path, endpoint: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_ENDPOINT": endpoint}
    env.pop("HF_HUB_OFFLINE", None)
    return subprocess.run(
        [sys.executable, "-m", "sidecar", *args], env=env, capture_output=True, text=True, timeout=300
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_hub_weights_download_once_then_come_from_the_cache(tmp_path, tiny_weights):
    image = str(tiny_weights / "input.png")
    generate = ("generate", image, "--out", str(tmp_path / "out"), "--resolution", "32")
    with FakeHub("test-org/tiny-triposr", tiny_weights) as hub:
        first = run_cli(
            *generate, "--weights", "test-org/tiny-triposr", hf_home=tmp_path, endpoint=hub.endpoint
        )
        assert first.returncode == 0, first.stderr
        assert sorted(hub.downloads()) == ["config.yaml", "model.ckpt", "vit_config.json"]
        hub.requests.clear()
        second = run_cli(
            *generate, "--weights", "test-org/tiny-triposr", hf_home=tmp_path, endpoint=hub.endpoint
        )
        assert second.returncode == 0, second.stderr
        assert hub.file_requests() == []
    assert (tmp_path / "out" / "input.glb").stat().st_size > 0


def test_offline_without_cached_weights_says_what_to_do_in_one_sentence(tmp_path, tiny_weights):
    unreachable = f"http://127.0.0.1:{closed_port()}"
    out = run_cli(
        "generate",
        str(tiny_weights / "input.png"),
        "--out",
        str(tmp_path),
        hf_home=tmp_path,
        endpoint=unreachable,
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: The TripoSR weights (stabilityai/TripoSR")
    assert "--weights" in lines[0] and "config.yaml and model.ckpt" in lines[0]


def test_a_repo_without_the_files_is_named(tmp_path, tiny_weights):
    with FakeHub("test-org/tiny-triposr", tiny_weights) as hub:
        out = run_cli(
            "generate",
            str(tiny_weights / "input.png"),
            "--out",
            str(tmp_path),
            "--weights",
            "test-org/other",
            hf_home=tmp_path,
            endpoint=hub.endpoint,
        )
    assert out.returncode == 1
    assert "test-org/other holds no TripoSR weights" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_local_folder_must_hold_config_and_checkpoint(tmp_path, tiny_weights):
    (tmp_path / "config.yaml").write_bytes((tiny_weights / "config.yaml").read_bytes())
    with pytest.raises(WeightsUnavailable, match=r"lacks model\.ckpt"):
        local_weights(tmp_path)
    with pytest.raises(WeightsUnavailable, match="does not exist"):
        local_weights(tmp_path / "missing")
    files = local_weights(tiny_weights)
    assert files.vit_config == tiny_weights / "vit_config.json"


def test_a_damaged_download_is_caught_by_its_checksum(tmp_path):
    damaged = tmp_path / "model.ckpt"
    damaged.write_bytes(b"not the published checkpoint")
    with pytest.raises(WeightsUnavailable, match="damaged"):
        verify_checkpoint(damaged, "429e2c6b22a0923967459de24d67f05962b235f79cde6b032aa7ed2ffcd970ee")
