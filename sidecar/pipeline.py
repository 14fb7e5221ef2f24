"""One image to one GLB with the local model, stage by stage, timed and measured.

The CLI's `generate` and the service's local backend both run jobs through `generate_glb`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .assets.colour import srgb_to_linear
from .assets.finish import finish
from .assets.options import ASSET_STAGES, AssetOptions
from .assets.surface import ColourSource, Surface
from .clock import ProgressCallback, StageClock
from .glb import DEFAULT_MODEL_NAME, surface_to_glb
from .memory import PeakMemory
from .triposr import TripoSR
from .triposr.device import device_name
from .triposr.grid import FieldQuery
from .triposr.isosurface import DEFAULT_COARSE_RESOLUTION
from .triposr.mesh import field_colours, find_surface
from .triposr.model import DEFAULT_THRESHOLD

# The stages of a job, in order, as progress reports and timings name them: "density" evaluates the field
# and extracts the isosurface; the asset stages that follow run only when the job asks for them.
STAGES = ("preprocess", "encode", "density", *ASSET_STAGES, "export")


@dataclass(frozen=True)
class GenerationParams:
    resolution: int = 256
    foreground_ratio: float = 0.85
    remove_background: bool = True
    chunk_size: int = 0  # points evaluated at once; 0: what the device evaluates best
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


def field_colour_source(query: FieldQuery, chunk_size: int) -> ColourSource:
    """The model's colour field as a bake samples it: linear RGB at points in glTF's frame."""

    def colours(points: np.ndarray) -> np.ndarray:
        return srgb_to_linear(field_colours(query, points, chunk_size)).astype(np.float32)

    return colours


def generate_glb(
    model: TripoSR,
    image: Image.Image,
    params: GenerationParams = GenerationParams(),
    progress: ProgressCallback | None = None,
    options: AssetOptions = AssetOptions(),
    name: str = DEFAULT_MODEL_NAME,
) -> GenerationResult:
    clock = StageClock(progress)
    chunk_size = params.chunk_size or model.chunk_size
    with PeakMemory(model.device) as memory:
        with clock.stage("preprocess"):
            pixels = model.preprocess(image, params.foreground_ratio, params.remove_background)
        with clock.stage("encode"):
            query = model.field_query(model.encode(pixels, clock.reporter("encode"))[0])
        with clock.stage("density"):
            vertices, faces = find_surface(
                query,
                model.radius,
                params.resolution,
                params.threshold,
                chunk_size,
                progress=clock.reporter("density"),
                sparse=params.sparse,
                coarse_resolution=params.coarse_resolution,
            )
        surface = finish(Surface(vertices, faces), field_colour_source(query, chunk_size), options, clock)
        with clock.stage("export"):
            glb = surface_to_glb(surface, name)
    return GenerationResult(
        glb=glb,
        vertices=len(surface.vertices),
        faces=len(surface.faces),
        device=device_name(model.device),
        stage_seconds=clock.seconds,
        peak_rss_bytes=memory.peak_rss,
        peak_device_bytes=memory.peak_device,
    )
