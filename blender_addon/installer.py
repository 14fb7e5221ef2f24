"""Install the sidecar into a Python environment of its own, in the add-on's user folder. No bpy.

Four steps, each a process the tick follows without waiting for it: make the environment with Blender's own
Python, install PyTorch built for this machine, install the sidecar from the wheel build.py put in the zip,
and run the sidecar's `doctor` in it. Their output goes to one log. Only once `doctor` has answered is the
marker written: an environment without it is half made, and is not used.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .launcher import end, log_tail, spawn

TORCH = "torch==2.13.0"
CUDA_INDEX = "https://download.pytorch.org/whl/cu130"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
MARKER = "installed.json"
WHEEL_FOLDER = Path(__file__).resolve().parent / "sidecar-wheel"  # where build.py puts the sidecar's wheel
PIP_OPTIONS = ["--disable-pip-version-check", "--no-compile"]  # compiling torch's files takes minutes
ONLINE_ACCESS = (
    "Installing the sidecar downloads PyTorch and the sidecar's packages, and Blender may not go online: "
    "allow it in Blender's Preferences ▸ System ▸ Network ▸ Allow Online Access, or set Package Source "
    "to a folder of wheels."
)


@dataclass(frozen=True)
class Step:
    name: str
    command: list[str]


def environment_python(environment: Path) -> Path:
    if sys.platform == "win32":
        return environment / "Scripts" / "python.exe"
    return environment / "bin" / "python"


def torch_index(system: str, has_nvidia_gpu: bool) -> str | None:
    """The package index with PyTorch's build for this machine; None: PyPI's (macOS: Metal is built in)."""
    if system == "Darwin":
        return None
    return CUDA_INDEX if has_nvidia_gpu else CPU_INDEX


def this_machines_torch_index() -> str | None:
    # The driver's tool is there wherever an NVIDIA GPU can be used.
    return torch_index(platform.system(), shutil.which("nvidia-smi") is not None)


def pip_install(python: Path, packages: list[str], source: str, index: str | None = None) -> list[str]:
    """`pip install` from a folder of wheels (`source`), offline; or online, from `index` or PyPI."""
    command = [str(python), "-m", "pip", "install", *PIP_OPTIONS]
    if source:
        command += ["--no-index", "--find-links", source]
    elif index:
        command += ["--index-url", index]
    return [*command, *packages]


def install_steps(
    base_python: str, environment: Path, wheel: Path, source: str, index: str | None
) -> list[Step]:
    python = environment_python(environment)
    return [
        # --clear: a cancelled or failed install is begun afresh
        Step("Making the environment", [base_python, "-m", "venv", "--clear", str(environment)]),
        Step("Installing PyTorch", pip_install(python, [TORCH], source, index)),
        Step("Installing the sidecar", pip_install(python, [str(wheel)], source)),
        Step("Checking it", [str(python), "-m", "sidecar", "doctor"]),
    ]


def bundled_wheel(folder: Path = WHEEL_FOLDER) -> Path | None:
    wheels = sorted(folder.glob("*.whl"))
    return wheels[-1] if wheels else None


def refusal(source: str, online_access: bool, wheel: Path | None) -> str:
    """Why an install cannot begin; empty when it can."""
    if wheel is None:
        return "This copy of the add-on holds no sidecar wheel: install a zip that build.py made."
    if source:
        if not Path(source).is_dir():
            return f"Package Source {source} is no folder: choose a folder of wheels, or leave it empty."
        return ""
    return "" if online_access else ONLINE_ACCESS


def installed(environment: Path) -> dict | None:
    """What the marker says was installed; None when the environment is missing or half made."""
    try:
        marker = json.loads((environment / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and environment_python(environment).is_file() else None


def doctor_rows(output: str) -> dict[str, str]:
    """`doctor`'s table (a name, two spaces or more, a value) as a dict."""
    rows = {}
    for line in output.splitlines():
        name, separator, value = line.partition("  ")
        if separator and name and not name.startswith(" "):
            rows[name] = value.strip()
    return rows


def environment_variables() -> dict[str, str]:
    # The environment's Python sees its own packages only: not those of a path Blender was started with.
    return {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}


def remove(environment: Path) -> None:
    """Delete the environment, marker first: what remains of a removal that failed is not `installed`."""
    (environment / MARKER).unlink(missing_ok=True)
    shutil.rmtree(environment)


class Installer:
    """The install this Blender runs, one step at a time; `poll` moves it on."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.index = 0  # the step running, or the one that failed
        self.process: subprocess.Popen | None = None
        self.environment: Path | None = None
        self.log_path: Path | None = None
        self.step_start = 0  # where the running step's output begins in the log
        self.failure = ""  # why the last install stopped; empty when it did not
        self.done = False  # the last install finished and its marker is written

    @property
    def running(self) -> bool:
        return self.process is not None

    def progress(self) -> tuple[float, str]:
        """How far the running install is (0 to 1), and a line that says so."""
        count = len(self.steps)
        return self.index / count, f"Step {self.index + 1} of {count}: {self.steps[self.index].name}…"

    def start(self, steps: list[Step], environment: Path, log_path: Path) -> None:
        if self.running:
            return
        self.steps, self.index, self.environment, self.log_path = steps, 0, environment, log_path
        self.failure, self.done = "", False
        environment.parent.mkdir(parents=True, exist_ok=True)
        (environment / MARKER).unlink(missing_ok=True)  # the environment is rebuilt: no longer installed
        self.start_step()

    def start_step(self) -> None:
        assert self.environment is not None and self.log_path is not None
        command = self.steps[self.index].command
        try:
            # cwd: not Blender's folder, where a `sidecar` folder would shadow the package.
            self.process, self.step_start = spawn(
                command, self.log_path, cwd=self.environment.parent, environment=environment_variables()
            )
        except OSError as exc:
            reason = exc.strerror or exc
            self.fail(f"{self.steps[self.index].name} failed: cannot run “{command[0]}”: {reason}.")

    def poll(self) -> bool:
        """Move on when the running step has ended; True when anything changed."""
        if self.process is None:
            return False
        code = self.process.poll()
        if code is None:
            return False
        self.process = None
        if code != 0:
            last = self.last_line().rstrip(".") or "see its log"
            self.fail(f"{self.steps[self.index].name} failed (exit code {code}): {last}.")
        elif self.index + 1 < len(self.steps):
            self.index += 1
            self.start_step()
        else:
            self.finish()
        return True

    def finish(self) -> None:
        assert self.environment is not None and self.log_path is not None
        rows = doctor_rows(log_tail(self.log_path, self.step_start))
        marker = {
            "sidecar": rows.get("triposr-sidecar", ""),
            "torch": rows.get("torch", ""),
            "devices": rows.get("devices", ""),
            "python": str(environment_python(self.environment)),
        }
        (self.environment / MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
        self.done = True

    def cancel(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        end(process, kill=True)  # pip and what it started, all of them
        process.wait(timeout=10)
        self.failure = f"The install was cancelled at step {self.index + 1} ({self.steps[self.index].name})."

    def fail(self, sentence: str) -> None:
        self.process = None
        self.failure = f"{sentence} Its log: {self.log_path}"

    def last_line(self) -> str:
        assert self.log_path is not None
        tail = log_tail(self.log_path, self.step_start)
        return next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "")

    def log_lines(self, count: int = 4) -> list[str]:
        """The last lines of the log, for the preferences to show."""
        if self.log_path is None:
            return []
        return [line for line in log_tail(self.log_path, 0, 2000).splitlines() if line.strip()][-count:]
