"""The run record for this machine: devices, model load time, and per-resolution timings and memory.

Without weights on the machine it measures a full-size network with seeded random weights, saved
and loaded back the way real weights are, and says so: the timings and memory are real, the meshes are
not (random weights give a lattice-like surface that fills the volume, so extraction costs more than
for a real object).
"""

from __future__ import annotations

import io
import platform
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import psutil
import torch
from PIL import Image, ImageDraw

from shared.protocol import weights_folder

from . import __version__
from .assets.options import AssetOptions
from .estimates import features
from .measurements import Run
from .memory import format_bytes
from .pipeline import GenerationParams, generate_glb
from .triposr.config import OFFICIAL_CONFIG, architecture, load_config
from .triposr.device import device_name, resolve_precision, select_device, usable_devices
from .triposr.errors import TripoSRError, WeightsUnavailable
from .triposr.loading import load_model
from .triposr.mesh import find_surface
from .triposr.model import DEFAULT_THRESHOLD
from .triposr.op_audit import OpRecorder
from .triposr.preprocess import prepare_image
from .triposr.random_weights import random_model
from .triposr.weights import cached_weights, local_weights

# A resolution is skipped when its memory, projected from the one before, exceeds this share of the RAM.
MEMORY_SHARE = 0.9
# The resolution at which half precision's surface is compared with float32's.
SHIFT_RESOLUTION = 128
# A first run pays for lazy initialisation (kernels, allocator pools, thread pools), which a sidecar that
# keeps its model pays once: one untimed run at this resolution comes before those measured.
WARM_UP_RESOLUTION = 32


@dataclass
class ResolutionRun:
    resolution: int
    stage_seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float | None = None
    peak_rss_bytes: int | None = None
    peak_device_bytes: int | None = None
    vertices: int | None = None
    faces: int | None = None
    error: str | None = None
    skipped: str | None = None  # why it was not run


@dataclass
class BenchRecord:
    sidecar_version: str
    python: str
    torch: str
    platform: str
    usable_devices: list[str]
    device: str
    precision: str
    weights: str
    random_weights: bool
    load_seconds: float
    network: str  # the architecture and precision, as estimates tell networks apart
    runs: list[ResolutionRun] = field(default_factory=list)
    mps_fallbacks: dict[str, int] = field(default_factory=dict)
    # In half precision, what it costs: the mean distance from its surface to float32's (both ways), as a
    # share of the surface's bounding-box diagonal, at SHIFT_RESOLUTION.
    surface_shift_vs_float32: float | None = None

    def to_json(self) -> dict:
        return asdict(self)

    def measured_runs(self, params: GenerationParams, options: AssetOptions) -> list[Run]:
        """The resolutions that ran, as runs for estimates."""
        return [
            Run(
                lane="local",
                place=self.device,
                network=self.network,
                params=features(replace(params, resolution=run.resolution), options),
                stage_seconds=run.stage_seconds,
                peak_rss_bytes=run.peak_rss_bytes,
                peak_device_bytes=run.peak_device_bytes,
                origin="bench",
            )
            for run in self.runs
            if run.total_seconds is not None
        ]


def bench_image() -> Image.Image:
    """A fixed object on a transparent background, so every machine measures the same input."""
    image = Image.new("RGBA", (512, 512), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((120, 90, 390, 430), fill=(196, 64, 40, 255))
    draw.rectangle((200, 40, 310, 130), fill=(60, 90, 180, 255))
    return image


def bench_png(variant: int = 0) -> bytes:
    """The bench image as a PNG file; each variant differs in one pixel, so that no store answers it from a
    job of another variant."""
    image = bench_image()
    image.putpixel((0, 0), (variant % 256, variant // 256 % 256, 1, 255))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def run_bench(
    weights: str,
    device: str,
    resolutions: list[int],
    precision: str = "float32",
    params: GenerationParams | None = None,
    options: AssetOptions | None = None,
    log=print,
) -> BenchRecord:
    params = params or GenerationParams()
    options = options or AssetOptions()
    target = select_device(device)
    precision = resolve_precision(target, precision)
    image = bench_image()
    with tempfile.TemporaryDirectory(prefix="triposr-bench-") as scratch:
        source, random = _weights_to_measure(weights, Path(scratch), log)
        started = time.perf_counter()
        model = load_model(source, str(target), precision=precision)
        load_seconds = time.perf_counter() - started
        record = BenchRecord(
            sidecar_version=__version__,
            python=platform.python_version(),
            torch=torch.__version__,
            platform=f"{platform.system()} {platform.release()} {platform.machine()}",
            usable_devices=[device_name(torch.device(name)) for name in usable_devices()],
            device=device_name(target),
            precision=precision,
            weights="seeded random weights of the full-size network" if random else weights,
            random_weights=random,
            load_seconds=load_seconds,
            network=f"{architecture(model.config)} {precision}",
        )
        log(f"model loaded in {load_seconds:.1f} s on {record.device} ({precision})")
        _measure(model, image, params, options, WARM_UP_RESOLUTION)
        baseline = psutil.Process().memory_info().rss
        previous: ResolutionRun | None = None
        # Counting MPS fallbacks costs a Python call per op: only where there is something to count.
        recorder = OpRecorder() if target.type == "mps" else nullcontext()
        with recorder:
            for resolution in resolutions:
                log(f"resolution {resolution}...")
                run = _beyond_memory(previous, resolution, baseline, params.sparse)
                run = run or _measure(model, image, params, options, resolution)
                record.runs.append(run)
                previous = previous if run.error or run.skipped else run
        if isinstance(recorder, OpRecorder):
            record.mps_fallbacks = dict(recorder.audit.mps_fallbacks)
        if precision != "float32":
            log(f"the surface in {precision} against float32, at {SHIFT_RESOLUTION}...")
            half = _surface(model, image)
            del model  # one copy of the weights at a time
            full = _surface(load_model(source, str(target), precision="float32"), image)
            record.surface_shift_vs_float32 = surface_shift(half, full)
    return record


def _surface(model, image: Image.Image) -> np.ndarray:
    scene_code = model.encode(model.preprocess(image))[0]
    query = model.field_query(scene_code)
    vertices, _ = find_surface(query, model.radius, SHIFT_RESOLUTION, DEFAULT_THRESHOLD, model.chunk_size)
    return vertices


def surface_shift(vertices: np.ndarray, reference: np.ndarray) -> float:
    """The mean distance between two surfaces' vertices, each to the other's nearest, over the reference's
    bounding-box diagonal."""
    from scipy.spatial import cKDTree

    there = cKDTree(reference).query(vertices)[0]
    back = cKDTree(vertices).query(reference)[0]
    diagonal = float(np.linalg.norm(np.ptp(reference, axis=0)))
    return float((there.mean() + back.mean()) / 2 / diagonal)


def _beyond_memory(
    previous: ResolutionRun | None, resolution: int, baseline: int, sparse: bool
) -> ResolutionRun | None:
    """A skipped run, when the last one's memory, scaled up, would not fit in this machine's memory.

    Random weights make a surface that fills the volume, so its size grows fast with resolution; it
    grows with the square (the surface) on the sparse path, with the cube (the grid) on the dense one.
    """
    if previous is None or previous.peak_rss_bytes is None or resolution <= previous.resolution:
        return None
    growth = (resolution / previous.resolution) ** (2 if sparse else 3)
    projected = baseline + (previous.peak_rss_bytes - baseline) * growth
    total = psutil.virtual_memory().total
    if projected <= MEMORY_SHARE * total:
        return None
    return ResolutionRun(
        resolution,
        skipped=f"at {previous.resolution} the surface had {previous.vertices:,} vertices and the "
        f"run peaked at {format_bytes(previous.peak_rss_bytes)}; at {resolution} it would need about "
        f"{format_bytes(int(projected))}, more than this machine's {format_bytes(total)} allows",
    )


def _weights_to_measure(weights: str, scratch: Path, log) -> tuple[str, bool]:
    """The weights folder or repo to load, or a folder of seeded random weights when there are none."""
    try:
        if weights_folder(weights):
            local_weights(Path(weights).expanduser())
            return weights, False
    except WeightsUnavailable as exc:
        log(f"no weights: {exc}")
    else:
        if cached_weights(weights) is not None:
            return weights, False
        log(f"no weights: {weights} is not downloaded yet (`generate` downloads it)")
    log("MEASURING WITH SEEDED RANDOM WEIGHTS of the full-size network: timings are real, meshes are not")
    write_random_weights(scratch)
    return str(scratch), True


def write_random_weights(folder: Path, seed: int = 0) -> None:
    """Seeded random weights of the full-size network, saved the way the official ones are."""
    model = random_model(load_config(OFFICIAL_CONFIG), prepare_image(bench_image()), seed)
    torch.save(model.state_dict(), folder / "model.ckpt")
    (folder / "config.yaml").write_bytes(OFFICIAL_CONFIG.read_bytes())


def _measure(
    model, image: Image.Image, params: GenerationParams, options: AssetOptions, resolution: int
) -> ResolutionRun:
    run = ResolutionRun(resolution)
    try:
        at_resolution = replace(params, resolution=resolution)
        result = generate_glb(model, image, at_resolution, options=options)
    except (TripoSRError, MemoryError, torch.OutOfMemoryError, RuntimeError) as exc:
        run.error = f"{type(exc).__name__}: {exc}"
        return run
    run.stage_seconds = result.stage_seconds
    run.total_seconds = result.total_seconds
    run.peak_rss_bytes = result.peak_rss_bytes
    run.peak_device_bytes = result.peak_device_bytes
    run.vertices, run.faces = result.vertices, result.faces
    return run
