"""Real Blender for the tests: the `bpy` wheel in a virtual environment of its own, one per version.

Each script runs in a fresh process with isolated user folders, and reports back through a JSON file
(and, for arrays, `.npz` files it writes next to it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "blender_scripts"

# The newest `bpy` wheel of each series the tests run, and the Python it needs (that of the Blender release).
BPY_RELEASES = {"4.2": "4.2.23", "4.5": "4.5.15", "5.0": "5.0.1", "5.2": "5.2.3"}
BPY_PYTHONS = {"4.2": "3.11", "4.5": "3.11", "5.0": "3.11", "5.2": "3.13"}


# What Blender or Python print for something deprecated or wrong that still works.
WARNING = re.compile(r"warning|deprecat", re.IGNORECASE)


class BlenderScriptError(AssertionError):
    pass


def find_python(version: str) -> str:
    """An interpreter of this Python version: this one, one on PATH, or one pyenv has installed."""
    if sys.version_info[:2] == tuple(int(part) for part in version.split(".")):
        return sys.executable
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(map(str, pyenv_root.glob(f"versions/{version}.*/bin/python{version}")), reverse=True)
    for candidate in filter(None, candidates):
        # a pyenv shim is on PATH even when its version is not selected, and then fails: ask it
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True
        )
        if probe.returncode == 0 and probe.stdout.decode().strip() == str(
            tuple(map(int, version.split(".")))
        ):
            return candidate
    raise RuntimeError(
        f"The Blender tests need Python {version}, the only Python the bpy wheels of "
        f"{', '.join(s for s, v in BPY_PYTHONS.items() if v == version)} install on; none was found on PATH "
        f"or under {pyenv_root}/versions (pyenv install {version} provides one)."
    )


def ensure_bpy(series: str) -> Path:
    """The interpreter of `.venv-blender-<series>`, created and given bpy on first use."""
    release = BPY_RELEASES[series]
    venv = ROOT / f".venv-blender-{series}"
    python = venv / "bin" / "python"
    marker = venv / f"bpy-{release}.installed"
    if not marker.exists():
        subprocess.run([find_python(BPY_PYTHONS[series]), "-m", "venv", "--clear", str(venv)], check=True)
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
            "PYTHONWARNINGS": "always",  # a deprecation in a newer Blender shows here
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
        console = process.stdout + process.stderr
        warnings = [line for line in console.splitlines() if WARNING.search(line)]
        if warnings:
            raise BlenderScriptError(f"{script} warned in Blender {self.series}:\n" + "\n".join(warnings))
        return json.loads(result.read_text())


def run_script(blender: Blender, script: str, workdir: Path, **settings) -> dict:
    """Run a script in Blender with the test's settings, passed as a JSON file; what it reported."""
    path = workdir / f"{Path(script).stem}.json"
    path.write_text(json.dumps({"workdir": str(workdir), **settings}))
    return blender.run(script, workdir, str(path), timeout=600)
