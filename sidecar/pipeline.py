"""One image to one GLB with the local model, stage by stage, timed and measured.

The CLI's `generate` and the service's local backend both run jobs through `generate_glb`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from PIL import Image

from .glb import mesh_to_glb
from .memory import PeakMemory
from .triposr import TripoSR
from .triposr.device import device_name
from .triposr.isosurface import DEFAULT_COARSE_RESOLUTION
from .triposr.mesh import coloured_mesh, find_surface
from .triposr.model import DEFAULT_CHUNK_SIZE, DEFAULT_THRESHOLD

# The stages of a job, in order, as progress reports and timings name them: "density" evaluates the
# field and extracts the isosurface, "surface" colours it.
STAGES = ("preprocess", "encode", "density", "surface", "export")

# Called with a stage name and the fraction of that stage done; raising from it cancels the job.
ProgressCallback = Callable[[str, float], None]


@dataclass(frozen=True)
class GenerationParams:
    resolution: int = 256
    foreground_ratio: float = 0.85
    remove_background: bool = True
    chunk_size: int = DEFAULT_CHUNK_SIZE
    threshold: float = DEFAULT_THRESHOLD
    sparse: bool = True  # evaluate only near the surface; False evaluates the whole grid
    coarse_resolution: int = DEFAULT_COARSE_RESOLUTION  # the sparse path's coarse grid, points per axis


@dataclass
class GenerationResult:
    glb: bytes
    vertices: int
    faces: int
    device: str
    stage_seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_bytes: int = 0
    peak_device_bytes: int | None = None

    @property
    def total_seconds(self) -> float:
        return sum(self.stage_seconds.values())


class StageClock:
    """Times each stage and reports its start and end to the progress callback."""

    def __init__(self, progress: ProgressCallback | None):
        self.report: ProgressCallback = progress or (lambda stage, fraction: None)
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.report(name, 0.0)
        started = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - started
        self.report(name, 1.0)


def generate_glb(
    model: TripoSR,
    image: Image.Image,
    params: GenerationParams = GenerationParams(),
    progress: ProgressCallback | None = None,
) -> GenerationResult:
    clock = StageClock(progress)
    with PeakMemory(model.device) as memory:
        with clock.stage("preprocess"):
            pixels = model.preprocess(image, params.foreground_ratio, params.remove_background)
        with clock.stage("encode"):
            query = model.field_query(model.encode(pixels)[0])
        with clock.stage("density"):
            vertices, faces = find_surface(
                query,
                model.radius,
                params.resolution,
                params.threshold,
                params.chunk_size,
                progress=lambda fraction: clock.report("density", fraction),
                sparse=params.sparse,
                coarse_resolution=params.coarse_resolution,
            )
        with clock.stage("surface"):
            mesh = coloured_mesh(query, vertices, faces, params.resolution, model.radius, params.chunk_size)
        with clock.stage("export"):
            glb = mesh_to_glb(mesh)
    return GenerationResult(
        glb=glb,
        vertices=len(mesh.vertices),
        faces=len(mesh.faces),
        device=device_name(model.device),
        stage_seconds=clock.seconds,
        peak_rss_bytes=memory.peak_rss,
        peak_device_bytes=memory.peak_device,
    )
