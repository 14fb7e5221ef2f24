"""The estimate beside Generate and in the Batch panel, in real Blender against a real sidecar."""

from __future__ import annotations

import pytest
from addon_helpers import make_images
from blender_env import run_script


def test_the_panel_shows_estimates_that_follow_the_settings_and_the_jobs_run(
    blender, addon_zip, running_sidecar, tmp_path
):
    (image,) = make_images(tmp_path / "one", 1)
    make_images(tmp_path / "folder", 3)
    report = run_script(
        blender,
        "addon_estimate.py",
        tmp_path,
        zip=str(addon_zip),
        endpoint=running_sidecar.endpoint,
        image=str(image),
        batch=str(tmp_path / "folder"),
    )
    first, batch = report["first"], report["batch"]
    assert first["count"] == 1 and first["local"]["basis"] == "default"
    assert batch["count"] == 3
    assert batch["local"]["batch_seconds"] == pytest.approx(3 * first["local"]["seconds"], abs=0.02)
    line = next(text for text in report["main_text"] if text.endswith(" here"))
    assert line.startswith("≈ "), report["main_text"]
    assert "Typical figures until this computer has run a job like it" in report["main_text"]
    assert any(text.startswith("3 images: ≈ ") for text in report["batch_text"]), report["batch_text"]

    assert not report["stale_shown"], "an estimate for other settings is not shown"
    assert report["at_128"]["local"]["seconds"] > first["local"]["seconds"]

    assert report["job"]["state"] == "Done"
    after = report["after_job"]["local"]
    assert after["basis"] == "measured"
    assert abs(after["seconds"] - report["job"]["seconds"]) <= 0.05 + 0.05 * report["job"]["seconds"]
    assert "Typical figures until this computer has run a job like it" not in report["after_job_text"]
