"""What the Replicate tests share besides fixtures: the sidecars' settings and how to start one."""

from __future__ import annotations

import pytest
from sidecar_process import Launcher, Sidecar

# Quick polls, and a request that goes unanswered for 2 s counts as a server that stopped answering.
POLL_INTERVAL = "0.05"
REQUEST_TIMEOUT = 2.0
SIDECAR_ARGS = (
    *("--replicate-timeout", f"{REQUEST_TIMEOUT:g}"),
    *("--replicate-job-timeout", "6"),
    *("--max-local-resolution", "64"),
)
# A model configured by file: an official model (no version), whose output is {"mesh": url}.
EXTRA_MODELS = {
    "models": {
        "hunyuan-official": {
            "model": "tencent/hunyuan3d-2-official",
            "input": {
                "image": "{image}",
                "remove_background": "{remove_background}",
                "octree_resolution": 256,
            },
            "output": "mesh",
            "price_per_second": 0.002,
            "hardware": "Nvidia H100",
        },
        # One whose files follow the glTF specification: their COLOR_0 is linear already.
        "spec-colours": {
            "model": "someone/spec-colours",
            "input": {"image": "{image}"},
            "output": "mesh",
            "vertex_colours": "linear",
        },
    }
}


def start_sidecar(launcher: Launcher, url: str, token: str | None, *args: str) -> Sidecar:
    """A sidecar whose environment has the token (or none) and Replicate's address."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPLICATE_BASE_URL", url)
        patch.setenv("REPLICATE_POLL_INTERVAL", POLL_INTERVAL)
        if token is None:
            patch.delenv("REPLICATE_API_TOKEN", raising=False)
        else:
            patch.setenv("REPLICATE_API_TOKEN", token)
        return launcher.start(*args)
