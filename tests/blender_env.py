"""Real Blender for the tests: the `bpy` wheel in a virtual environment of its own, one per version.

Each script runs in a fresh process with isolated user folders, and reports back through a JSON file
(and, for arrays, `.npz` files it writes next to it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "blender_scripts"

# The newest release of each supported series that installs on Python 3.11.
BPY_RELEASES = {"4.2": "4.2.23", "4.5": "4.5.15", "5.0": "5.0.1"}


class BlenderScriptError(AssertionError):
    pass


def python311() -> str:
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if found is None:
        raise RuntimeError("The Blender tests need Python 3.11 (the bpy wheel's only Python).")
    return found


def ensure_bpy(series: str) -> Path:
    """The interpreter of `.venv-blender-<series>`, created and given bpy on first use."""
    release = BPY_RELEASES[series]
    venv = ROOT / f".venv-blender-{series}"
    python = venv / "bin" / "python"
    marker = venv / f"bpy-{release}.installed"
    if not marker.exists():
        subprocess.run([python311(), "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"bpy=={release}"],
            check=True,
            timeout=1800,
        )
        marker.touch()
    return python


@dataclass
class Blender:
    series: str
    python: Path

    def run(self, script: str, workdir: Path, *args: str, timeout: float = 300) -> dict:
        """Run `tests/blender_scripts/<script>` inside Blender; return what it reported."""
        result = workdir / f"{Path(script).stem}-result.json"
        result.unlink(missing_ok=True)
        user = workdir / "blender-user"
        user.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "BLENDER_USER_RESOURCES": str(user),
            "TRIPOSR_TEST_RESULT": str(result),
            "PYTHONPATH": str(SCRIPTS),
        }
        process = subprocess.run(
            [str(self.python), str(SCRIPTS / script), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if process.returncode != 0 or not result.exists():
            raise BlenderScriptError(
                f"{script} failed in Blender {self.series} (exit {process.returncode}):\n"
                f"{process.stdout[-4000:]}\n{process.stderr[-4000:]}"
            )
        return json.loads(result.read_text())
