"""A cancel that lands while the model encodes the image stops it between two blocks of the backbone, not at
the end of the stage. The tiny model encodes in no time, so this sidecar's network has a backbone of many
blocks over large planes (random weights): its encoding takes seconds, like the full network's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from service_harness import QUICK, EventLog, unique_png

from sidecar.triposr.config import load_config
from sidecar.triposr.loading import build_model

BLOCKS = 24
PLANE_SIZE = 32  # 3 x 32 x 32 tokens per block, instead of the tiny model's 3 x 8 x 8


@pytest.fixture(scope="module")
def slow_encoding_weights(tmp_path_factory, tiny_weights: Path) -> Path:
    folder = tmp_path_factory.mktemp("slow-encoding")
    config = (tiny_weights / "config.yaml").read_text()
    config = config.replace("plane_size: 8", f"plane_size: {PLANE_SIZE}")
    config = config.replace("num_layers: 2", f"num_layers: {BLOCKS}")
    (folder / "config.yaml").write_text(config)
    shutil.copy(tiny_weights / "vit_config.json", folder)
    torch.manual_seed(0)
    model = build_model(load_config(folder / "config.yaml", folder / "vit_config.json"), device="cpu")
    torch.save(model.state_dict(), folder / "model.ckpt")
    return folder


def test_a_cancel_during_encode_stops_the_job_before_the_stage_ends(launcher, slow_encoding_weights, image):
    sidecar = launcher.start(weights=slow_encoding_weights)
    with sidecar.client() as client:
        log = EventLog(client)
        job = client.submit(unique_png(image), QUICK)
        log.until_stage(job, "encode")
        client.cancel(job)
        log.until_done(job)
    progress = [event.header for event in log.events(job) if event.type == "progress"]
    assert log.terminal(job).event.type == "cancelled"
    assert max(step["fraction"] for step in progress if step["stage"] == "encode") < 1.0, "encode did not end"
    assert "density" not in {step["stage"] for step in progress}
