"""Starting and stopping the sidecar process. No bpy: plain pytest covers it.

The sidecar runs in its own process group with its output in a log file, and gets Blender's pid so it exits
once Blender, and every other Blender that uses it, has quit. Whether it is up is decided by `hello`
answering, which the tick checks; this module only owns the process and turns the ways a start fails into
sentences that say what to do.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .advice import PREFERENCES, in_preference_terms

COMMAND = "triposr-sidecar"
LOG_LIMIT = 5_000_000  # bytes: a longer log starts afresh


class LaunchError(Exception):
    """A start that cannot work; the message says why and what to do."""


@dataclass(frozen=True)
class LaunchSettings:
    # "COMMAND": the triposr-sidecar program; "PYTHON": an interpreter that has the package; "INSTALLED": the
    # Python of the environment the add-on's Install made
    runner: str
    executable: str  # the program or the interpreter; empty: triposr-sidecar found on PATH, or none installed
    endpoint: str
    weights: str
    device: str
    data_dir: str = ""
    token: str = ""  # the Replicate token: handed over in the environment, never on the command line

    def __repr__(self) -> str:  # keeps the token out of tracebacks and logs
        return f"LaunchSettings({self.runner}, {self.executable!r}, {self.endpoint!r})"


def endpoint_problem(endpoint: str) -> str:
    """Why the endpoint is no address the sidecar can listen on or be reached at; empty when it is one."""
    example = "tcp://127.0.0.1:5571"
    where = f"Set Endpoint in {PREFERENCES}"
    if not endpoint:
        return f"No endpoint is set. {where}, for example to {example}."
    if "://" not in endpoint:
        return f"The endpoint “{endpoint}” lacks its tcp:// at the front. {where} to tcp://{endpoint}."
    scheme, _, rest = endpoint.partition("://")
    if scheme == "ipc" and rest:
        return ""
    try:
        port = urlsplit(endpoint).port
    except ValueError:
        port = None
    if scheme != "tcp" or not urlsplit(endpoint).hostname or port is None or not 0 < port < 65536:
        return f"“{endpoint}” is not an address the sidecar can use. {where} to one like {example}."
    return ""


def is_local(endpoint: str) -> bool:
    """Whether the endpoint is on this computer, where the add-on can start the sidecar and read its files."""
    if endpoint.startswith("ipc://"):
        return True
    return urlsplit(endpoint).hostname in ("127.0.0.1", "localhost", "::1")


def find_command() -> str | None:
    return shutil.which(COMMAND)


def program(settings: LaunchSettings) -> list[str]:
    """The command up to the `serve` subcommand."""
    if settings.runner == "INSTALLED":
        if not settings.executable:
            raise LaunchError(f"The sidecar is not installed: press Install the Sidecar in {PREFERENCES}.")
        return [settings.executable, "-m", "sidecar"]
    if settings.runner == "PYTHON":
        if not settings.executable:
            raise LaunchError(f"Choose the Python interpreter that has the TripoSR sidecar in {PREFERENCES}.")
        return [settings.executable, "-m", "sidecar"]
    executable = settings.executable or find_command()
    if not executable:
        raise LaunchError(
            f"“{COMMAND}” is not on the PATH Blender sees. Set its full path, or the Python that has the "
            f"sidecar installed, in {PREFERENCES}."
        )
    return [executable]


def serve_command(settings: LaunchSettings, parent_pid: int) -> list[str]:
    bind = settings.endpoint.replace("://localhost:", "://127.0.0.1:")
    command = [*program(settings), "serve", "--bind", bind, "--parent-pid", str(parent_pid)]
    if settings.weights:
        command += ["--weights", settings.weights]
    if settings.device:
        command += ["--device", settings.device]
    if settings.data_dir:
        command += ["--data-dir", settings.data_dir]
    return command


def serve_environment(settings: LaunchSettings) -> dict[str, str]:
    environment = dict(os.environ)
    if settings.token:
        environment["REPLICATE_API_TOKEN"] = settings.token
    environment["PYTHONUNBUFFERED"] = "1"  # so the log shows what happened right up to a crash
    return environment


def diagnose(returncode: int, log_tail: str, settings: LaunchSettings) -> str:
    """A sentence for a sidecar that exited while starting, from its exit code and the end of its log."""
    last = next((line.strip() for line in reversed(log_tail.splitlines()) if line.strip()), "")
    last = in_preference_terms(last)
    if "No module named 'sidecar'" in log_tail or "No module named sidecar" in log_tail:
        return (
            f"{settings.executable} has no TripoSR sidecar installed. Install it into that Python "
            f"(pip install -e . in the TripoSR for Blender folder), or choose another one in {PREFERENCES}."
        )
    if "No module named" in log_tail:
        return f"The sidecar is missing a package ({last}). Reinstall it with its dependencies."
    if "usage:" in log_tail:
        return f"The sidecar does not understand its command line ({last}). It may be too old: update it."
    if returncode == 2:  # the sidecar's code for an endpoint it cannot bind
        return f"{last} Choose another port for the endpoint in {PREFERENCES}, or close what uses it."
    if last.startswith("error: "):
        last = last[len("error: ") :]
    return f"The sidecar stopped while starting (exit code {returncode}): {last or 'see its log.'}"


def exit_description(returncode: int) -> str:
    """`exit code N`, and the signal's name for a process a signal ended (a negative code on POSIX)."""
    if returncode < 0:
        try:
            return f"exit code {returncode}, {signal.Signals(-returncode).name}"
        except ValueError:
            pass
    return f"exit code {returncode}"


def log_tail(path: Path, start: int = 0, size: int = 4000) -> str:
    """The end of the log, from `start` on: what the latest run wrote."""
    try:
        with path.open("rb") as stream:
            stream.seek(max(start, path.stat().st_size - size))
            return stream.read().decode("utf-8", "replace")
    except OSError:
        return ""


class Launcher:
    """The sidecar process this Blender started, if any."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.settings: LaunchSettings | None = None
        self.log_path: Path | None = None
        self.log_start = 0  # where this run's lines begin in the log

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, settings: LaunchSettings, log_path: Path) -> None:
        if problem := endpoint_problem(settings.endpoint):
            raise LaunchError(problem)
        if not is_local(settings.endpoint):
            raise LaunchError(
                f"{settings.endpoint} is on another computer: start the sidecar there, or set a local "
                f"endpoint (tcp://127.0.0.1:PORT) in {PREFERENCES}."
            )
        if self.running:
            return
        command = serve_command(settings, os.getpid())
        try:
            # cwd: not Blender's folder, where a `sidecar` folder would shadow the package.
            self.process, self.log_start = spawn(
                command, log_path, cwd=log_path.parent, environment=serve_environment(settings)
            )
        except OSError as exc:
            raise LaunchError(
                f"Cannot run “{command[0]}”: {exc.strerror or exc}. Check the sidecar's program or "
                f"Python in {PREFERENCES}."
            ) from None
        self.settings, self.log_path = settings, log_path

    def exited(self) -> int | None:
        """The exit code, once, when the process this Blender started has ended; None otherwise.

        A cheap `poll()`, so the tick asks every time: a sidecar that dies is seen at once, not after the
        heartbeat timeout."""
        if self.process is None or self.process.poll() is None:
            return None
        code, self.process = self.process.returncode, None
        return code

    def start_failure(self, returncode: int) -> str:
        """Why the process ended before it ever answered."""
        assert self.settings is not None and self.log_path is not None
        return diagnose(returncode, log_tail(self.log_path, self.log_start), self.settings)

    def stopped(self, returncode: int) -> str:
        """That the process ended while it served, and where to read why."""
        return f"The sidecar stopped ({exit_description(returncode)}); its log: {self.log_path}"

    def stop(self, grace: float = 3.0) -> None:
        """End the process if it outlived a shutdown request: terminate its group, then kill it."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            pass
        end(process, kill=False)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            end(process, kill=True)
            process.wait(timeout=grace)


def spawn(
    command: list[str], log_path: Path, cwd: Path, environment: dict[str, str]
) -> tuple[subprocess.Popen, int]:
    """Start `command` without waiting, its output appended to the log; the process and where its lines
    begin in the log. Raises OSError when the program cannot be run.

    Its own process group: Ctrl+C in Blender's terminal does not reach it, and `end` stops its children too.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    creationflags = 0
    if sys.platform == "win32":
        creationflags = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
    # Appended to, so that a process that died keeps its last words when the next one starts.
    mode = "a" if log_path.is_file() and log_path.stat().st_size < LOG_LIMIT else "w"
    with log_path.open(mode, encoding="utf-8") as log:
        log.write(f"--- started {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(command)}\n")
        log.flush()
        start = log.tell()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            creationflags=creationflags,
            start_new_session=sys.platform != "win32",
        )
    return process, start


def end(process: subprocess.Popen, kill: bool) -> None:
    """Terminate (or kill) the process and, on POSIX, its whole group."""
    try:
        if sys.platform == "win32":
            process.kill() if kill else process.terminate()
        else:
            os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
