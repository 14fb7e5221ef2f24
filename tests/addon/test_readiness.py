"""A first run: what the add-on lacks before it can start a sidecar, each with the preference to set."""

from __future__ import annotations

import sys

from addon_helpers import TINY
from triposr_addon.launcher import LaunchSettings
from triposr_addon.readiness import missing

ENDPOINT = "tcp://127.0.0.1:5571"


def test_no_sidecar_program_and_no_weights_folder_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    settings = LaunchSettings("COMMAND", "", ENDPOINT, str(tmp_path / "weights"), "auto")
    command, weights = missing(settings)
    assert command.preference == "Command" and "not on the PATH" in command.sentence
    assert weights.preference == "Weights" and "has no config.yaml or model.ckpt" in weights.sentence


def test_a_python_that_is_not_there_is_named(tmp_path):
    (python,) = missing(LaunchSettings("PYTHON", str(tmp_path / "python"), ENDPOINT, "", "auto"))
    assert python.preference == "Python"
    assert python.sentence == f"There is no program at {tmp_path / 'python'}."


def test_a_complete_setup_lacks_nothing_and_a_repo_id_is_fetched_on_first_use():
    assert missing(LaunchSettings("PYTHON", sys.executable, ENDPOINT, str(TINY), "cpu")) == []
    assert missing(LaunchSettings("PYTHON", sys.executable, ENDPOINT, "stabilityai/TripoSR", "auto")) == []


def test_what_install_the_sidecar_would_provide_is_marked_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    (command,) = missing(LaunchSettings("COMMAND", "", ENDPOINT, "", "auto"))
    (python,) = missing(LaunchSettings("PYTHON", str(tmp_path / "python"), ENDPOINT, "", "auto"))
    assert command.installable and python.installable
    weights_folder = str(tmp_path / "weights")
    (weights,) = missing(LaunchSettings("PYTHON", sys.executable, ENDPOINT, weights_folder, "auto"))
    assert not weights.installable


def test_the_installed_sidecar_before_an_install_says_to_install_it():
    (item,) = missing(LaunchSettings("INSTALLED", "", ENDPOINT, "", "auto"))
    assert item.installable and item.preference == "Run With"
    assert item.sentence.startswith("The sidecar is not installed: press Install the Sidecar in Edit > ")
    assert missing(LaunchSettings("INSTALLED", sys.executable, ENDPOINT, "", "auto")) == []
