"""Mesh extraction on this CPU: the dense grid against the sparse, surface-following path.

Two fields, both costing the full-size network per point (seeded random weights, no download):
- "random": the random network's own field. It fills the volume like a lattice, which is the worst case
  for the sparse path: surface is everywhere.
- "object": what a real object looks like to the extractor. The random scene code is low-pass filtered
  (a Gaussian blur of each plane, sigma 4 of 64 texels), the network's raw density on it is standardised,
  a radial falloff -8 |p|^2 / radius^2 is added, and the threshold is placed so that the largest share of
  a 64^3 grid, of 10 %, 8 %, 6 %..., lies inside for which the inside is one connected blob.

Each case runs in a fresh process so its peak RSS is its own; the weights (about 1.7 GB) count in it.

    python bench/extraction.py [--cases object:dense:256,object:sparse:256,...]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sidecar.benchmark import bench_image, write_random_weights
from sidecar.memory import PeakMemory, format_bytes
from sidecar.triposr import load_model
from sidecar.triposr.grid import FieldQuery, density_grid
from sidecar.triposr.mesh import field_colours, find_surface
from sidecar.triposr.model import DEFAULT_THRESHOLD, TripoSR
from sidecar.triposr.preprocess import prepare_image

DEFAULT_CASES = (
    "object:dense:256,object:sparse:256,object:dense:512,object:sparse:512,object:sparse:1024,"
    "random:dense:256,random:sparse:256"
)
BLUR_SIGMA = 4.0
FALLOFF = 8.0
INSIDE_SHARES = (0.10, 0.08, 0.06, 0.04, 0.02)


def blurred(scene_code: torch.Tensor, sigma: float) -> torch.Tensor:
    """Each plane's channels low-pass filtered with a Gaussian, then rescaled to unit spread."""
    radius = math.ceil(3 * sigma)
    taps = torch.exp(-((torch.arange(-radius, radius + 1) / sigma) ** 2) / 2)
    taps = taps / taps.sum()
    planes = scene_code.flatten(0, 1).unsqueeze(1)  # [3 * C, 1, H, W]
    planes = F.conv2d(F.pad(planes, (radius,) * 4, mode="reflect"), taps.view(1, 1, 1, -1))
    planes = F.conv2d(planes, taps.view(1, 1, -1, 1))
    planes = planes.view_as(scene_code)
    return planes / planes.std()


def object_like_field(model: TripoSR, scene_code: torch.Tensor) -> tuple[FieldQuery, dict]:
    planes = blurred(scene_code, BLUR_SIGMA)
    radius = model.radius
    with torch.no_grad():
        sample = (torch.rand(200_000, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1) * radius
        raw, _ = model.field.raw(planes, sample)
    mean, spread = raw.mean(), raw.std()

    def log_density(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw, color = model.field.raw(planes, points)
        shape = (raw - mean) / spread - FALLOFF * (points**2).sum(1) / radius**2
        return shape, torch.sigmoid(color)

    from scipy import ndimage

    coarse = density_grid(log_density, 64, radius, model.chunk_size)
    for share in INSIDE_SHARES:
        level = float(np.quantile(coarse, 1 - share))
        _, blobs = ndimage.label(coarse > level)
        if blobs == 1:
            break
    offset = math.log(DEFAULT_THRESHOLD) - level

    def query(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape, color = log_density(points)
        return torch.exp(shape + offset), color

    def lattice(xs: torch.Tensor, ys: torch.Tensor, zs: torch.Tensor) -> torch.Tensor:
        """The same on a lattice, the way the pipeline evaluates a model's own field (`field_query`)."""
        raw = model.field.raw_lattice(planes, xs, ys, zs)
        squared = (xs**2)[:, None, None] + (ys**2)[None, :, None] + (zs**2)[None, None, :]
        return torch.exp((raw - mean) / spread - FALLOFF * squared / radius**2 + offset)

    query.lattice = lattice
    return query, {"blobs_at_64": int(blobs), "inside_share_at_64": share}


def measure(weights: Path, field_kind: str, method: str, resolution: int) -> dict:
    with PeakMemory() as memory:
        model = load_model(str(weights), device="cpu")
        scene_code = model.encode(prepare_image(bench_image()))[0]
        if field_kind == "object":
            query, notes = object_like_field(model, scene_code)
        else:
            query, notes = model.field_query(scene_code), {}
        baseline = memory.current_peak()
        started = time.perf_counter()
        vertices, _ = find_surface(
            query, model.radius, resolution, DEFAULT_THRESHOLD, model.chunk_size, sparse=method == "sparse"
        )
        surface_seconds = time.perf_counter() - started
        field_colours(query, vertices, model.chunk_size)
        colour_seconds = time.perf_counter() - started - surface_seconds
    return {
        **notes,
        "surface_s": surface_seconds,
        "colour_s": colour_seconds,
        "peak_rss_before_extraction": baseline,
        "peak_rss": memory.peak_rss,
        "vertices": len(vertices),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", default=DEFAULT_CASES, help="field:method:resolution, comma-separated")
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)  # internal: weights field method resolution
    args = parser.parse_args()
    if args.one:
        weights, field_kind, method, resolution = args.one
        print(json.dumps(measure(Path(weights), field_kind, method, int(resolution))))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; weights: seeded random, full size")
    print("field | method | res | surface s | colours s | RSS before | peak RSS | vertices | blobs | inside")
    with tempfile.TemporaryDirectory() as folder:
        write_random_weights(Path(folder))
        for case in args.cases.split(","):
            field_kind, method, resolution = case.split(":")
            child = subprocess.run(
                [sys.executable, __file__, "--one", folder, field_kind, method, resolution],
                capture_output=True, text=True,
            )  # fmt: skip
            if child.returncode != 0:
                print(f"{field_kind} | {method} | {resolution} | failed: {child.stderr.strip()[-300:]}")
                continue
            row = json.loads(child.stdout.strip().splitlines()[-1])
            print(
                f"{field_kind} | {method} | {resolution} | {row['surface_s']:.1f} | {row['colour_s']:.1f} | "
                f"{format_bytes(row['peak_rss_before_extraction'])} | {format_bytes(row['peak_rss'])} | "
                f"{row['vertices']:,} | {row.get('blobs_at_64', '-')} | {row.get('inside_share_at_64', '-')}",
                flush=True,
            )


if __name__ == "__main__":
    main()
