"""What the add-on's tests share: a real sidecar serving the tiny model, and test images."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from shared.client import SidecarClient, SidecarUnavailable

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "triposr" / "tiny"
# The interpreter that has the sidecar and torch: the project's own venv, which runs the tests.
SIDECAR_PYTHON = Path(sys.executable)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Sidecar:
    endpoint: str
    data_dir: Path
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_sidecar(folder: Path, port: int | None = None) -> Sidecar:
    """`python -m sidecar serve` with the tiny model on the CPU, once `hello` answers."""
    endpoint = f"tcp://127.0.0.1:{port or free_port()}"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "sidecar.log"
    command = [str(SIDECAR_PYTHON), "-m", "sidecar", "serve", "--bind", endpoint]
    command += ["--weights", str(TINY), "--device", "cpu", "--data-dir", str(folder / "data")]
    with log.open("w") as stream:
        process = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT, cwd=ROOT)
    sidecar = Sidecar(endpoint, folder / "data", process, log)
    with SidecarClient(endpoint) as client:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the sidecar exited ({process.returncode}):\n{log.read_text()}")
            try:
                client.hello(timeout=1.0)
                return sidecar
            except SidecarUnavailable:
                if time.monotonic() > deadline:
                    sidecar.stop()
                    raise
                time.sleep(0.2)


def make_images(folder: Path, count: int, corrupt: int | None = None) -> list[Path]:
    """`count` different PNGs made from the fixture's input image; `corrupt` (an index) is a truncated one."""
    folder.mkdir(parents=True, exist_ok=True)
    source = Image.open(TINY / "input.png").convert("RGBA")
    paths = []
    for index in range(count):
        variant = source.rotate(index * 7, resample=Image.BILINEAR)
        variant = ImageOps.mirror(variant) if index % 2 else variant
        path = folder / f"object_{index + 1}.png"
        variant.save(path)
        if index == corrupt:
            path.write_bytes(path.read_bytes()[:200])
        paths.append(path)
    return paths


def load_build():
    """build.py as a module."""
    spec = importlib.util.spec_from_file_location("build_script", ROOT / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module
