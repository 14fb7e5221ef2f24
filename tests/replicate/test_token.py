"""The Replicate token goes to Replicate only: never into logs, the job store, messages or a .blend."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fake_replicate import TOKEN
from meshes import as_tripo_sr_on_replicate
from replicate_harness import POLL_INTERVAL, start_sidecar
from service_harness import run_job, unique_png
from sidecar_process import free_port

ON_REPLICATE = {"backend": "replicate"}


def files_holding(token: str, *places: Path) -> list[Path]:
    """The files under `places` (or the files themselves) whose bytes contain the token."""
    files = [path for place in places for path in ([place] if place.is_file() else place.rglob("*"))]
    return [path for path in files if path.is_file() and token.encode() in path.read_bytes()]


def test_what_replicate_echoes_of_the_token_is_blanked_out_everywhere(launcher, fake, image):
    # A careless server repeats the token in a refusal and in a failed prediction's log and error. Two
    # sidecars: after a refusal of its token, a sidecar sends no more jobs to Replicate.
    fake.reset(echo_token=True, outcome="failed", mesh=as_tripo_sr_on_replicate())
    failing, refusing = (start_sidecar(launcher, fake.url, TOKEN) for _ in range(2))
    with failing.client() as client:
        failed = run_job(client, unique_png(image), ON_REPLICATE)[-1].header
    fake.behaviour.token = "r8_NotTheSidecarsToken"
    with refusing.client() as client:
        refused = run_job(client, unique_png(image), ON_REPLICATE)[-1].header

    assert (refused["code"], failed["code"]) == ("token_rejected", "prediction_failed")
    for error in (refused, failed):
        assert TOKEN not in error["message"] and "[token]" in error["message"]
    for sidecar in (failing, refusing):
        with sidecar.client() as client:
            assert TOKEN not in json.dumps(client.list_jobs(limit=500))
        assert TOKEN not in sidecar.log()
        assert files_holding(TOKEN, sidecar.data_dir) == []  # jobs.sqlite (and its WAL), results/


def test_the_token_set_in_blender_reaches_replicate_but_no_file(
    blender, addon_zip, fake, tiny_weights, image, tmp_path, monkeypatch
):
    fake.reset(echo_token=True, mesh=as_tripo_sr_on_replicate())
    # The token comes from the add-on's preferences only; the sidecar it starts inherits the rest.
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    monkeypatch.setenv("REPLICATE_BASE_URL", fake.url)
    monkeypatch.setenv("REPLICATE_POLL_INTERVAL", POLL_INTERVAL)
    picture = tmp_path / "mug.png"
    picture.write_bytes(unique_png(image))
    data_dir = tmp_path / "data"
    settings = {
        "workdir": str(tmp_path),
        "zip": str(addon_zip),
        "endpoint": f"tcp://127.0.0.1:{free_port()}",
        "python": sys.executable,  # the project's venv, which has the sidecar
        "weights": str(tiny_weights),
        "data_dir": str(data_dir),
        "image": str(picture),
        "token": TOKEN,
    }
    (tmp_path / "replicate_token.json").write_text(json.dumps(settings))
    report = blender.run("replicate_token.py", tmp_path, str(tmp_path / "replicate_token.json"), timeout=600)

    offline = report["offline"]
    assert offline["allowed"] is False and offline["sidecar_started"] is False
    assert "Online access is off" in offline["problem"]
    assert report["job"]["state"] == "DONE", report["job"]
    assert "Cost $0.039" in report["job"]["summary"]
    assert report["backends"] == ["local", "replicate"]
    assert fake.authorizations == {f"Bearer {TOKEN}"}, "the preference reached the sidecar, and Replicate"
    for state, complaints in report["drawn"].items():
        assert complaints == [], f"drawing the panels while {state}: {complaints}"

    assert files_holding(TOKEN, Path(report["log"]), data_dir, Path(report["blend"])) == []
