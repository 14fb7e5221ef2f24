"""Install the Sidecar from the preferences, in real Blender: offered where a first run lacks the sidecar,
refused offline, a failure told with its log, and (in one Python 3.11 Blender) a whole offline install from
a folder of wheels that the add-on then runs the sidecar from, a cancel, and Remove."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from addon_helpers import ROOT, TINY, assert_panels_drew_cleanly
from blender_env import BPY_PYTHONS, run_script
from sidecar_process import free_port

# PyTorch and the sidecar's dependencies for Blender's Python 3.11 on this machine, downloaded once.
WHEELS = ROOT / "build" / "install-wheels"
TORCH = "torch==2.13.0"


def sidecar_wheel(addon_zip: Path, folder: Path) -> Path:
    with zipfile.ZipFile(addon_zip) as archive:
        (name,) = [name for name in archive.namelist() if name.startswith("sidecar-wheel/")]
        return Path(archive.extract(name, folder))


def wheel_folder(addon_zip: Path, folder: Path) -> Path:
    """What an offline install needs besides the sidecar's wheel, kept in build/install-wheels/ and fetched
    again when the sidecar's requirements change."""
    wheel = sidecar_wheel(addon_zip, folder)
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA")))
    requires = [line for line in metadata.decode().splitlines() if line.startswith("Requires-Dist")]
    wanted = "\n".join([TORCH, *requires])
    stamp = WHEELS / "requirements.txt"
    if not stamp.is_file() or stamp.read_text() != wanted:
        command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet"]
        command += ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp"]
        subprocess.run([*command, "--dest", str(WHEELS), TORCH, str(wheel)], check=True, timeout=900)
        stamp.write_text(wanted)
    for own in WHEELS.glob("triposr_sidecar-*.whl"):  # the install must take the zip's, not a copy here
        own.unlink()
    return WHEELS


def settings(tmp_path: Path, addon_zip: Path, full: bool, wheels: str = "") -> dict:
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    return {
        "zip": str(addon_zip),
        "endpoint": f"tcp://127.0.0.1:{free_port()}",
        "command": str(tmp_path / "nowhere" / "triposr-sidecar"),
        "weights": str(TINY),
        "data_dir": str(tmp_path / "data"),
        "empty_source": str(empty),
        "wheels": wheels,
        "full": full,
    }


def only_pip_options_of_this_test(monkeypatch) -> None:
    """pip in Blender sees no configuration of this machine (its indexes, its find-links): only the folder."""
    for name in [name for name in os.environ if name.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)


def check_cheap_part(report: dict, tmp_path: Path) -> None:
    assert report["first_run"] == [["Command", True]]  # the missing program: Install would provide it
    assert report["polls"] == {"install": True, "cancel": False, "remove": False}
    assert "Preferences ▸ System ▸ Network ▸ Allow Online Access" in report["offline_refusal"]
    assert report["offline_started"] is False
    assert report["empty_source_error"] == ""
    failed = report["failed"]
    log = Path(report["environment"]).parent / "logs" / "install.log"
    assert failed["step"] == 1 and failed["installed"] is None and failed["runner"] == "COMMAND"
    assert failed["failure"].startswith("Installing PyTorch failed (exit code 1): ")
    assert failed["failure"].endswith(f"Its log: {log}")
    assert "No matching distribution found for torch==2.13.0" in log.read_text()
    assert Path(report["environment"]).is_relative_to(tmp_path / "blender-user")


def test_install_is_offered_refused_offline_and_a_failure_names_its_log(
    blender, addon_zip, tmp_path, monkeypatch
):
    only_pip_options_of_this_test(monkeypatch)
    report = run_script(blender, "addon_install.py", tmp_path, **settings(tmp_path, addon_zip, full=False))
    check_cheap_part(report, tmp_path)
    assert_panels_drew_cleanly(report, {"first run", "installing", "failed"})


def test_an_offline_install_runs_the_sidecar_and_remove_deletes_it(
    blender, addon_zip, tmp_path, request, monkeypatch
):
    chosen = [s.strip() for s in request.config.getoption("--blender").split(",")]
    first_311 = next((series for series in chosen if BPY_PYTHONS[series] == "3.11"), None)
    if blender.series != first_311:
        pytest.skip(f"the whole install runs once, in Blender {first_311} (the wheels are for Python 3.11)")
    wheels = wheel_folder(addon_zip, tmp_path)
    only_pip_options_of_this_test(monkeypatch)
    report = run_script(
        blender, "addon_install.py", tmp_path, **settings(tmp_path, addon_zip, True, str(wheels))
    )
    check_cheap_part(report, tmp_path)

    cancelled = report["cancelled"]
    assert cancelled["failure"] == "The install was cancelled at step 2 (Installing PyTorch)."
    assert cancelled["running"] is False and cancelled["installed"] is None
    assert cancelled["pip_exit"] is not None

    installed = report["installed"]
    assert installed["failure"] == "" and installed["steps_seen"] == [0, 1, 2, 3]
    marker = installed["marker"]
    assert marker["sidecar"] == "0.1.0" and marker["torch"].startswith("2.13.0")
    assert Path(marker["python"]).is_relative_to(report["environment"])
    assert installed["runner"] == "INSTALLED"  # chosen for the artist once it is there
    assert installed["missing"] == [] and installed["remove_allowed"] is True

    served = report["served"]
    assert served["connected"], served["problem"]
    assert served["program"] == [marker["python"], "-m", "sidecar"] and served["version"] == "0.1.0"

    removed = report["removed"]
    assert removed["sidecar_exit"] is not None and removed["connected"] is False  # stopped before deleting
    assert removed["environment_left"] is False and removed["python_left"] is False
    assert removed["missing"] == [["Run With", True]]
    assert_panels_drew_cleanly(report, {"first run", "installing", "failed", "installed"})
