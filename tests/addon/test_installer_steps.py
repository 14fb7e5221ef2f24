"""Install the Sidecar without Blender: the PyTorch build each machine gets, the commands, the marker."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import psutil
import pytest
from triposr_addon import installer
from triposr_addon.installer import (
    CPU_INDEX,
    CUDA_INDEX,
    MARKER,
    ONLINE_ACCESS,
    Installer,
    Step,
    environment_python,
    install_steps,
    installed,
    refusal,
    remove,
    torch_index,
)


@pytest.mark.parametrize(
    ("system", "nvidia", "index"),
    [
        ("Darwin", False, None),  # PyPI's macOS wheel has Metal
        ("Linux", True, CUDA_INDEX),
        ("Windows", True, CUDA_INDEX),
        ("Linux", False, CPU_INDEX),  # PyPI's Linux wheel would bring gigabytes of CUDA for nothing
        ("Windows", False, CPU_INDEX),
    ],
)
def test_each_machine_gets_its_pytorch_build(system, nvidia, index):
    assert torch_index(system, nvidia) == index


def test_an_online_install_names_the_index_and_an_offline_one_only_the_folder(tmp_path):
    environment, wheel = tmp_path / "env", tmp_path / "triposr_sidecar-0.1.0-py3-none-any.whl"
    python = str(environment_python(environment))
    online = install_steps("/blender/python", environment, wheel, "", CUDA_INDEX)
    assert [step.name for step in online] == [
        "Making the environment",
        "Installing PyTorch",
        "Installing the sidecar",
        "Checking it",
    ]
    assert online[0].command == ["/blender/python", "-m", "venv", "--clear", str(environment)]
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-compile"]
    assert online[1].command == [*pip, "--index-url", CUDA_INDEX, "torch==2.13.0"]
    assert online[2].command == [*pip, str(wheel)]  # its packages come from PyPI
    assert online[3].command == [python, "-m", "sidecar", "doctor"]

    offline = install_steps("/blender/python", environment, wheel, "/wheels", CUDA_INDEX)
    assert offline[1].command == [*pip, "--no-index", "--find-links", "/wheels", "torch==2.13.0"]
    assert offline[2].command == [*pip, "--no-index", "--find-links", "/wheels", str(wheel)]


def test_online_access_is_needed_unless_a_folder_of_wheels_is_the_source(tmp_path):
    wheel = tmp_path / "sidecar.whl"
    assert refusal("", online_access=False, wheel=wheel) == ONLINE_ACCESS
    assert "Preferences ▸ System ▸ Network ▸ Allow Online Access" in ONLINE_ACCESS
    assert refusal("", online_access=True, wheel=wheel) == ""
    assert refusal(str(tmp_path), online_access=False, wheel=wheel) == ""
    assert "is no folder" in refusal(str(tmp_path / "nowhere"), online_access=True, wheel=wheel)
    assert "no sidecar wheel" in refusal("", online_access=True, wheel=None)


def python_step(name: str, code: str) -> Step:
    return Step(name, [sys.executable, "-c", code])


def run(steps: list[Step], environment: Path) -> Installer:
    job = Installer()
    job.start(steps, environment, environment.parent / "logs" / "install.log")
    deadline = time.monotonic() + 60
    while job.running:
        assert time.monotonic() < deadline
        job.poll()
        time.sleep(0.01)
    return job


def fake_environment(tmp_path: Path) -> Path:
    """A folder with a python where an environment's is, as a finished first step leaves it."""
    environment = tmp_path / "sidecar-env"
    environment_python(environment).parent.mkdir(parents=True)
    environment_python(environment).write_text("")
    return environment


def test_the_marker_is_written_only_after_the_check_and_holds_what_it_found(tmp_path):
    environment = fake_environment(tmp_path)
    doctor = "print('triposr-sidecar  0.1.0'); print('torch            2.13.0+cpu'); print('devices  CPU')"
    job = run([python_step("One", "print('one')"), python_step("Checking it", doctor)], environment)
    assert job.done and job.failure == ""
    assert installed(environment) == {
        "sidecar": "0.1.0",
        "torch": "2.13.0+cpu",
        "devices": "CPU",
        "python": str(environment_python(environment)),
    }
    log = (environment.parent / "logs" / "install.log").read_text()
    assert "one\n" in log and "triposr-sidecar  0.1.0" in log


def test_a_failed_step_stops_the_install_says_why_and_leaves_no_marker(tmp_path):
    environment = fake_environment(tmp_path)
    (environment / MARKER).write_text(json.dumps({"sidecar": "old"}))  # a previous install is begun afresh
    failing = python_step("Installing PyTorch", "print('ERROR: No matching distribution'); exit(1)")
    never = python_step("Checking it", "open('ran', 'w')")
    job = run([failing, never], environment)
    log = environment.parent / "logs" / "install.log"
    assert job.failure == (
        f"Installing PyTorch failed (exit code 1): ERROR: No matching distribution. Its log: {log}"
    )
    assert not job.done and installed(environment) is None
    assert not (environment.parent / "ran").exists()


def test_cancel_ends_the_step_and_what_it_started(tmp_path):
    environment = fake_environment(tmp_path)
    child = tmp_path / "child.pid"
    # A pip that runs a build: the step's child must end with it.
    code = (
        "import subprocess, sys, time, pathlib; "
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"pathlib.Path({str(child)!r}).write_text(str(c.pid)); time.sleep(60)"
    )
    job = Installer()
    job.start([python_step("Installing PyTorch", code)], environment, tmp_path / "install.log")
    deadline = time.monotonic() + 30
    while not child.exists() or not child.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    job.cancel()
    assert not job.running and not job.done and installed(environment) is None
    assert job.failure == "The install was cancelled at step 1 (Installing PyTorch)."
    process = psutil.Process(int(child.read_text()))
    with contextlib.suppress(psutil.NoSuchProcess):
        process.wait(timeout=10)  # raises TimeoutExpired where the cancel left it running


def test_a_half_made_environment_is_not_installed_and_remove_deletes_it(tmp_path):
    environment = fake_environment(tmp_path)
    assert installed(environment) is None  # no marker: the check never passed
    (environment / MARKER).write_text(json.dumps({"sidecar": "0.1.0"}))
    assert installed(environment) == {"sidecar": "0.1.0"}
    environment_python(environment).unlink()
    assert installed(environment) is None  # a marker without its Python is no install either
    remove(environment)
    assert not environment.exists()


def test_the_bundled_wheel_is_found_in_its_folder(tmp_path):
    assert installer.bundled_wheel(tmp_path) is None
    (tmp_path / "triposr_sidecar-0.1.0-py3-none-any.whl").write_bytes(b"")
    assert installer.bundled_wheel(tmp_path) == tmp_path / "triposr_sidecar-0.1.0-py3-none-any.whl"
