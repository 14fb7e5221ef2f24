"""The Khronos glTF Validator (npm `gltf-validator`), installed on first use under build/, run with node."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION = "2.0.0-dev.3.10"
FOLDER = ROOT / "build" / f"gltf-validator-{VERSION}"
# Reads each file named on the command line; prints one JSON report per line.
SCRIPT = """
const fs = require("fs");
const validator = require("gltf-validator");
(async () => {
  for (const path of process.argv.slice(1)) {
    const report = await validator.validateBytes(new Uint8Array(fs.readFileSync(path)), {maxIssues: 50});
    console.log(JSON.stringify({path, issues: report.issues}));
  }
})().catch((error) => { console.error(error); process.exit(1); });
"""


def ensure_validator() -> Path:
    package = FOLDER / "node_modules" / "gltf-validator"
    if not package.exists():
        if shutil.which("npm") is None:
            raise RuntimeError("The glTF Validator tests need node and npm on PATH.")
        FOLDER.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(FOLDER),
                "--no-audit",
                "--no-fund",
                f"gltf-validator@{VERSION}",
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return FOLDER


def validate(*paths: Path) -> list[dict]:
    """The validator's `issues` for each file: numErrors, numWarnings, numInfos, messages."""
    process = subprocess.run(
        ["node", "-e", SCRIPT, *map(str, paths)],
        cwd=ensure_validator(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr
    return [json.loads(line)["issues"] for line in process.stdout.splitlines()]


def problems(issues: dict) -> list[str]:
    """Errors and warnings, one line each."""
    return [
        f"{message['code']} at {message.get('pointer', '')}: {message['message']}"
        for message in issues["messages"]
        if message["severity"] <= 1
    ]


def assert_valid(*glbs: bytes, folder: Path) -> None:
    """Each GLB passes the validator with no errors and no warnings."""
    paths = []
    for index, data in enumerate(glbs):
        paths.append(folder / f"checked-{index}.glb")
        paths[-1].write_bytes(data)
    for path, issues in zip(paths, validate(*paths), strict=True):
        assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, (path.name, problems(issues))
