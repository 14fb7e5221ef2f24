"""Starting the sidecar: the command, the environment, and a sentence for each way a start fails."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from addon_helpers import SIDECAR_PYTHON, TINY
from triposr_addon.launcher import (
    Launcher,
    LaunchError,
    LaunchSettings,
    diagnose,
    endpoint_problem,
    exit_description,
    is_local,
    serve_command,
    serve_environment,
)

SETTINGS = LaunchSettings(
    runner="PYTHON",
    executable=str(SIDECAR_PYTHON),
    endpoint="tcp://localhost:5571",
    weights=str(TINY),
    device="cpu",
    token="r8_not_a_real_token",
)


def test_the_command_runs_serve_bound_to_loopback_with_blenders_pid():
    command = serve_command(SETTINGS, parent_pid=4242)
    assert command[:6] == [str(SIDECAR_PYTHON), "-m", "sidecar", "serve", "--bind", "tcp://127.0.0.1:5571"]
    assert command[command.index("--parent-pid") + 1] == "4242"
    assert command[command.index("--weights") + 1] == str(TINY)
    assert "--data-dir" not in command, "an empty data folder means the sidecar's default"


def test_the_token_travels_in_the_environment_only():
    assert serve_environment(SETTINGS)["REPLICATE_API_TOKEN"] == SETTINGS.token
    assert SETTINGS.token not in " ".join(serve_command(SETTINGS, 1))
    assert SETTINGS.token not in repr(SETTINGS)
    assert "REPLICATE_API_TOKEN" not in serve_environment(
        LaunchSettings("COMMAND", "x", "tcp://127.0.0.1:1", "", "")
    )


def test_only_endpoints_on_this_computer_can_be_started():
    assert is_local("tcp://127.0.0.1:5571") and is_local("tcp://localhost:1") and is_local("ipc:///tmp/s")
    assert not is_local("tcp://192.168.1.20:5571")
    with pytest.raises(LaunchError, match="another computer"):
        Launcher().start(
            LaunchSettings("PYTHON", sys.executable, "tcp://10.0.0.2:5571", "", ""), Path("x.log")
        )


def test_without_the_command_on_path_the_sentence_says_where_to_set_it(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(LaunchError, match="not on the PATH"):
        serve_command(LaunchSettings("COMMAND", "", "tcp://127.0.0.1:1", "", ""), 1)


def test_a_missing_interpreter_is_named(tmp_path):
    settings = LaunchSettings("PYTHON", str(tmp_path / "no-python"), "tcp://127.0.0.1:1", "", "")
    with pytest.raises(LaunchError, match=r"Cannot run .*no-python.*Preferences"):
        Launcher().start(settings, tmp_path / "sidecar.log")


def wait_for_exit(launcher: Launcher, timeout: float = 120) -> str:
    launcher.process.wait(timeout=timeout)
    return launcher.start_failure(launcher.exited())


def test_a_python_without_the_sidecar_says_to_install_it(tmp_path):
    python = Path(sys.base_prefix) / "bin" / "python3"  # the interpreter the venv was made from
    launcher = Launcher()
    launcher.start(
        LaunchSettings("PYTHON", str(python), "tcp://127.0.0.1:1", "", ""), tmp_path / "sidecar.log"
    )
    message = wait_for_exit(launcher)
    assert "has no TripoSR sidecar installed" in message and "pip install" in message


def test_a_taken_port_is_reported_with_what_to_do(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        endpoint = f"tcp://127.0.0.1:{taken.getsockname()[1]}"
        launcher = Launcher()
        settings = LaunchSettings(
            "PYTHON", str(SIDECAR_PYTHON), endpoint, str(TINY), "cpu", str(tmp_path / "data")
        )
        launcher.start(settings, tmp_path / "sidecar.log")
        message = wait_for_exit(launcher)
    assert "already listening" in message and "Choose another port" in message


def test_other_failures_keep_the_sidecars_own_sentence():
    log = "INFO: starting\nerror: The data folder /x cannot be created: Permission denied.\n"
    assert diagnose(1, log, SETTINGS).endswith("The data folder /x cannot be created: Permission denied.")
    assert "usage" not in diagnose(2, "usage: triposr-sidecar ...\nerror: invalid choice: 'serve'", SETTINGS)


@pytest.mark.parametrize(
    ("endpoint", "sentence"),
    [
        ("127.0.0.1:5571", "lacks its tcp:// at the front. Set Endpoint in Edit > Preferences"),
        ("tcp://127.0.0.1", "is not an address the sidecar can use"),
        ("tcp://127.0.0.1:99999", "is not an address the sidecar can use"),
        ("http://127.0.0.1:5571", "is not an address the sidecar can use"),
        ("", "No endpoint is set"),
        ("tcp://127.0.0.1:5571", ""),
        ("tcp://localhost:5571", ""),
        ("ipc:///tmp/triposr", ""),
    ],
)
def test_an_endpoint_that_cannot_work_gets_a_sentence(endpoint, sentence):
    problem = endpoint_problem(endpoint)
    assert (sentence in problem and problem) if sentence else problem == ""


def test_a_start_with_such_an_endpoint_says_so_rather_than_raise_from_zeromq(tmp_path):
    settings = LaunchSettings("PYTHON", str(SIDECAR_PYTHON), "127.0.0.1:5571", "", "")
    with pytest.raises(LaunchError, match="lacks its tcp://"):
        Launcher().start(settings, tmp_path / "sidecar.log")


def test_an_exit_is_told_with_its_code_and_for_a_signal_its_name(tmp_path):
    assert exit_description(3) == "exit code 3"
    assert exit_description(-9) == "exit code -9, SIGKILL"
    launcher = Launcher()
    launcher.log_path = tmp_path / "sidecar.log"
    assert launcher.stopped(1) == f"The sidecar stopped (exit code 1); its log: {tmp_path / 'sidecar.log'}"
