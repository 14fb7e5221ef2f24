"""How long a job will take and how much memory it will need, from the runs measured on this machine.

Each stage's time comes from the runs alike in what that stage depends on (STAGE_PARAMS). A stage whose time
hardly depends on the resolution (FIXED) takes the median of those runs; the others scale with it, along the
power law that the two measured resolutions nearest the job's show, or with the exponent their work grows by
(a surface's area, a grid's volume) when only one resolution was measured. A stage no alike run has measured
takes a typical figure for the device, and the estimate says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import median
from typing import Any

from .assets.options import AssetOptions
from .measurements import Run
from .pipeline import GenerationParams
from .triposr.isosurface import marches_whole_grid

# How a stage's time grows with the resolution: not at all, with the surface's area, with the grid's volume.
FIXED, SURFACE, GRID = 0.0, 2.0, 3.0
# The most a measured pair of resolutions may claim for the exponent, so that noise in two short runs
# cannot project an absurd time.
MAX_EXPONENT = 3.5
# The resolution the default figures are given at.
DEFAULT_RESOLUTION = 256
# The newest runs alike that a stage's time is taken from, at each resolution: the machine as it is now.
RECENT_RUNS = 20
# What each stage's time depends on, besides the resolution and the device.
STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    "preprocess": ("remove_background",),
    "encode": (),
    "density": ("whole_grid", "coarse_resolution"),
    "cleanup": ("cleanup", "smooth"),
    "decimate": ("target_faces",),
    "colour": ("target_faces",),
    "unwrap": ("target_faces", "texture"),
    "bake": ("target_faces", "texture"),
    "place": ("target_faces",),
    "export": ("target_faces", "texture"),
    # Replicate's own stages: the prediction runs the whole network there.
    "upload": (),
    "starting": (),
    "predict": (),
    "download": (),
    "convert": (),
}
# Typical seconds at DEFAULT_RESOLUTION with the full-size network, for a machine that has measured nothing:
# the network's stages by device, then the asset stages, which run on the CPU everywhere.
DEFAULT_NETWORK_SECONDS = {
    "cpu": {"preprocess": 0.5, "encode": 8.0, "density": 50.0},
    "mps": {"preprocess": 0.5, "encode": 1.5, "density": 8.0},
    "cuda": {"preprocess": 0.3, "encode": 0.3, "density": 1.5},
}
DEFAULT_ASSET_SECONDS = {
    "cleanup": 3.0,
    "decimate": 3.0,
    "colour": 1.0,
    "unwrap": 3.0,
    "bake": 5.0,
    "place": 0.2,
    "export": 1.0,
    "convert": 1.0,
}
# Replicate's A100 runs TripoSR in 25 to 30 s, a cold boot aside.
DEFAULT_REPLICATE_SECONDS = {"upload": 1.0, "starting": 2.0, "predict": 27.0, "download": 1.0}
# Typical peak memory of a local job at DEFAULT_RESOLUTION: the network and its activations, and the surface.
DEFAULT_MODEL_BYTES = 3_000_000_000
DEFAULT_SURFACE_BYTES = 500_000_000


@dataclass(frozen=True)
class Estimate:
    seconds: float
    stage_seconds: dict[str, float]
    basis: str  # "measured" (runs like it), "scaled" (from runs at other resolutions) or "default"
    how: str  # a sentence for people

    def fields(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": round(self.seconds, 2)}


def features(generation: GenerationParams, assets: AssetOptions) -> dict[str, Any]:
    """A job's parameters as runs are compared by: all of them, whether the whole grid is evaluated (as
    it is on the sparse path below twice the coarse resolution), and the face count it is simplified to."""
    whole_grid = not generation.sparse or marches_whole_grid(
        generation.resolution, generation.coarse_resolution
    )
    return {
        **asdict(generation),
        **asdict(assets),
        "whole_grid": whole_grid,
        "target_faces": assets.target_faces,
    }


def local_stages(assets: AssetOptions) -> tuple[str, ...]:
    return ("preprocess", "encode", "density", *assets.stages(), "export")


def replicate_stages(assets: AssetOptions) -> tuple[str, ...]:
    return (*DEFAULT_REPLICATE_SECONDS, "convert", *assets.stages(coloured=True), "export")


def estimate(
    runs: list[Run], job: dict[str, Any], stages: tuple[str, ...], defaults: dict[str, float]
) -> Estimate:
    """The job's time from `runs` (newest first), stage by stage; `defaults` for stages none has measured."""
    seconds, bases, scaled_from = {}, set(), set()
    for stage in stages:
        alike = [run for run in runs if stage in run.stage_seconds and _alike(run.params, job, stage)]
        exponent = stage_exponent(stage, job)
        if not alike:
            seconds[stage] = defaults[stage] * (job["resolution"] / DEFAULT_RESOLUTION) ** exponent
            bases.add("default")
        elif exponent == FIXED:
            seconds[stage] = median(run.stage_seconds[stage] for run in alike[:RECENT_RUNS])
            bases.add("measured")
        else:
            seconds[stage], used = _scaled(_by_resolution(alike, stage), job["resolution"], exponent)
            bases.add("measured" if used == [job["resolution"]] else "scaled")
            scaled_from.update(used)
    basis = next(basis for basis in ("default", "scaled", "measured") if basis in bases)
    return Estimate(sum(seconds.values()), seconds, basis, _how(basis, runs, sorted(scaled_from)))


def peak_memory(runs: list[Run], job: dict[str, Any]) -> int:
    """The job's peak resident memory: between the two measured resolutions around it, grown with the
    surface (or grid) beyond the largest, and never less than the smallest measured needed."""
    exponent = GRID if job["whole_grid"] else SURFACE
    peaks: dict[int, list[int]] = {}
    for run in runs:
        if run.peak_rss_bytes and run.params.get("whole_grid") == job["whole_grid"]:
            peaks.setdefault(run.params["resolution"], []).append(run.peak_rss_bytes)
    if not peaks:
        size = (job["resolution"] / DEFAULT_RESOLUTION) ** exponent
        return int(DEFAULT_MODEL_BYTES + DEFAULT_SURFACE_BYTES * size)
    measured = {resolution: max(values) for resolution, values in peaks.items()}
    target, resolutions = job["resolution"], sorted(measured)
    if target <= resolutions[0]:
        return measured[resolutions[0]]
    below = [resolution for resolution in resolutions if resolution <= target]
    above = [resolution for resolution in resolutions if resolution > target]
    if above or len(below) > 1:
        low, high = (below[-1], above[0]) if above else (below[-2], below[-1])
        # a + b·r^k through both points: the surface (or grid) grows on top of what the network holds
        share = (target**exponent - low**exponent) / (high**exponent - low**exponent)
        return int(max(measured[low] + (measured[high] - measured[low]) * share, measured[low]))
    low = below[-1]
    grown = (target / DEFAULT_RESOLUTION) ** exponent - (low / DEFAULT_RESOLUTION) ** exponent
    return int(measured[low] + DEFAULT_SURFACE_BYTES * grown)


def stage_exponent(stage: str, job: dict[str, Any]) -> float:
    if stage == "density":
        return GRID if job["whole_grid"] else SURFACE
    if stage in ("cleanup", "decimate", "convert"):
        return SURFACE
    if stage in ("colour", "unwrap", "bake", "place", "export"):
        return FIXED if job["target_faces"] else SURFACE
    return FIXED


def _alike(params: dict[str, Any], job: dict[str, Any], stage: str) -> bool:
    return all(params.get(name) == job[name] for name in STAGE_PARAMS[stage])


def _by_resolution(runs: list[Run], stage: str) -> dict[int, float]:
    """The median time of the stage at each resolution, from jobs where there are any (they ran as the
    sidecar runs, model warm and beside the client), else from `bench`."""
    grouped: dict[int, dict[str, list[float]]] = {}
    for run in runs:
        by_origin = grouped.setdefault(run.params["resolution"], {})
        by_origin.setdefault(run.origin, []).append(run.stage_seconds[stage])
    return {
        resolution: median((by_origin.get("job") or by_origin["bench"])[:RECENT_RUNS])
        for resolution, by_origin in grouped.items()
    }


def _scaled(times: dict[int, float], target: int, exponent: float) -> tuple[float, list[int]]:
    """The time at `target` from the measured resolutions: one, if measured there, else the nearest two."""
    if target in times:
        return times[target], [target]
    nearest = sorted(times, key=lambda resolution: abs(math.log(resolution / target)))[:2]
    base = nearest[0]
    if len(nearest) == 2 and times[nearest[0]] > 0 and times[nearest[1]] > 0:
        low, high = sorted(nearest)
        exponent = math.log(times[high] / times[low]) / math.log(high / low)
        exponent = min(max(exponent, 0.0), MAX_EXPONENT)
    return times[base] * (target / base) ** exponent, sorted(nearest)


def _how(basis: str, runs: list[Run], resolutions: list[int]) -> str:
    if basis == "default":
        if runs:
            return "partly a typical figure: this machine has not yet run a job like it"
        return "a typical figure: this machine has not run a job yet"
    if basis == "scaled":
        return f"scaled from runs here at resolution {' and '.join(map(str, resolutions))}"
    return "measured here, from runs like it"
