"""`triposr-sidecar submit` with Replicate: what each job and the batch cost, where a job went and why, the
model asked for, a bar that follows a cloud job's stages, and errors on stderr."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from fake_replicate import TOKEN
from meshes import as_tripo_sr_on_replicate, textured_glb
from replicate_harness import SIDECAR_ARGS, start_sidecar
from service_harness import unique_png

from shared.client import Event
from sidecar.backends import replicate_settings
from sidecar.backends.models import DEFAULT_PRICE_PER_SECOND, TRELLIS_VERSION
from sidecar.commands import submit as submit_command
from sidecar.commands.submit import JobView
from sidecar.pipeline import STAGES

ONE_PREDICTION = f"${28.0 * DEFAULT_PRICE_PER_SECOND:.4f}"


def submit(sidecar, images: list[Path], out: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sidecar", "submit", *map(str, images), "--endpoint", sidecar.endpoint,
         "--out", str(out), *options],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def pictures(folder: Path, image: bytes, *names: str) -> list[Path]:
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_bytes(unique_png(image))
    return [folder / name for name in names]


def test_submit_prints_what_each_job_and_the_batch_cost(cloud_sidecar, fake, image, tmp_path):
    fake.behaviour.mesh = as_tripo_sr_on_replicate()
    images = pictures(tmp_path / "in", image, "a.png", "b.png")
    done = submit(cloud_sidecar, images, tmp_path / "out", "--backend", "replicate")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for name in ("a", "b"):
        (line,) = [line for line in lines if line.startswith(str(tmp_path / "in" / f"{name}.png"))]
        assert ONE_PREDICTION in line and "Nvidia A100" in line
    assert f"Batch total: ${2 * 28.0 * DEFAULT_PRICE_PER_SECOND:.4f} (2 job(s) on Replicate)" in lines


def test_submit_says_why_a_job_moved_to_replicate(cloud_sidecar, fake, image, tmp_path):
    fake.behaviour.mesh = as_tripo_sr_on_replicate()
    images = pictures(tmp_path / "in", image, "big.png")
    done = submit(cloud_sidecar, images, tmp_path / "out", "--backend", "auto", "--resolution", "128")
    assert done.returncode == 0, done.stderr
    assert "moved to Replicate because it ran out of memory locally" in done.stdout


def test_submit_runs_the_replicate_model_asked_for(cloud_sidecar, fake, image, tmp_path):
    fake.behaviour.mesh = textured_glb()
    fake.behaviour.output = {"model_file": "{mesh}"}
    images = pictures(tmp_path / "in", image, "chair.png")
    done = submit(
        cloud_sidecar, images, tmp_path / "out", "--backend", "replicate", "--replicate-model", "trellis"
    )
    assert done.returncode == 0, done.stderr
    (created,) = fake.created
    assert created["body"]["version"] == TRELLIS_VERSION


def test_submit_writes_errors_to_stderr_with_what_a_failed_prediction_cost(
    cloud_sidecar, fake, image, tmp_path
):
    fake.behaviour.outcome = "failed"
    images = pictures(tmp_path / "in", image, "doomed.png")
    done = submit(cloud_sidecar, images, tmp_path / "out", "--backend", "replicate")
    assert done.returncode == 1
    assert "error:" not in done.stdout
    said = rf"error: .*doomed\.png: .*CUDA out of memory.*\(it cost \{ONE_PREDICTION}\)"
    assert re.search(said, done.stderr, re.DOTALL)
    assert "1 of 1 image(s) failed" in done.stderr


def test_submit_auto_without_a_token_names_the_missing_token(launcher, fake, image, tmp_path):
    sidecar = start_sidecar(launcher, fake.url, None, *SIDECAR_ARGS)
    images = pictures(tmp_path / "in", image, "big.png")
    done = submit(sidecar, images, tmp_path / "out", "--backend", "auto", "--resolution", "128")
    assert done.returncode == 1
    note, error = done.stderr.splitlines()[0], done.stderr.split("error: ")[1]
    assert note.startswith("note: auto jobs run only locally here") and "REPLICATE_API_TOKEN" in note
    assert "auto would have moved the job to Replicate" in error and "REPLICATE_API_TOKEN" in error
    refused = submit(sidecar, images, tmp_path / "out", "--backend", "replicate")
    assert refused.returncode == 1 and "REPLICATE_API_TOKEN" in refused.stderr
    assert not fake.authorizations and TOKEN not in done.stderr


class Bar:
    """Stands in for tqdm, which draws nothing when the output is not a terminal: what a bar was made with."""

    def __init__(self, **options):
        self.options, self.n, self.closed = options, 0.0, False

    def update(self, step: float) -> None:
        self.n += step

    def set_postfix_str(self, text: str, refresh: bool) -> None:
        self.postfix = text

    def close(self) -> None:
        self.closed = True


def test_a_job_that_moves_to_replicate_gets_a_bar_of_replicate_stages(monkeypatch, tmp_path):
    bars: list[Bar] = []
    monkeypatch.setattr(submit_command, "tqdm", lambda **options: bars.append(Bar(**options)) or bars[-1])
    view = JobView(tmp_path / "cloud.png", tmp_path / "cloud.glb")
    for stage, fraction in [("preprocess", 1.0), ("encode", 0.5), ("upload", 1.0), ("predict", 0.5)]:
        header = {"type": "progress", "stage": stage, "fraction": fraction}
        assert view.show(Event("progress", None, header, None))
    local, cloud = bars
    assert local.closed and local.options["total"] == len(STAGES)
    assert cloud.options["desc"] == "cloud.png on Replicate" and not cloud.closed
    assert cloud.options["total"] == len(replicate_settings.STAGES)
    assert (cloud.n, cloud.postfix) == (replicate_settings.STAGES.index("predict") + 0.5, "predict")
