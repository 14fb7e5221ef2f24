"""Speed and memory of the full-size TripoSR network on this machine, with seeded random weights.

No download: the network is built from the official config, given seeded random weights, saved as a
checkpoint in a temporary folder, and loaded back through `load_model`, the path real weights take.
Each resolution runs in a fresh process so its peak RSS is its own.

    python bench/model_speed.py [--resolutions 128,256,512] [--device cpu] [--chunk-size N]

Random weights give a lattice-like surface that fills the volume, far larger than a real object's, so
the peak up to the end of the field evaluation (what the grid costs) is printed apart from the peak of
the whole run (which also holds that surface).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from sidecar.benchmark import bench_image, write_random_weights
from sidecar.memory import PeakMemory, format_bytes
from sidecar.triposr import load_model
from sidecar.triposr.grid import density_grid
from sidecar.triposr.isosurface import dense_isosurface
from sidecar.triposr.mesh import field_colours


def measure(weights: Path, resolution: int, device: str, chunk_size: int) -> dict:
    """One resolution, in this process: load, forward, field evaluation, surface."""
    with PeakMemory() as whole:
        started = time.perf_counter()
        model = load_model(str(weights), device=device)
        loaded = time.perf_counter()
        pixels = model.preprocess(bench_image())
        scene_code = model.encode(pixels)[0]
        encoded = time.perf_counter()
        query = model.field_query(scene_code)
        chunk_size = chunk_size or model.chunk_size
        volume = density_grid(query, resolution, model.radius, chunk_size)
        evaluated = time.perf_counter()
        field_peak = whole.current_peak()
        vertices, _ = dense_isosurface(volume, 25.0)
        del volume
        field_colours(query, vertices / (resolution - 1) * 2 * model.radius - model.radius, chunk_size)
        finished = time.perf_counter()
    return {
        "resolution": resolution,
        "load_s": loaded - started,
        "forward_s": encoded - loaded,
        "field_s": evaluated - encoded,
        "surface_s": finished - evaluated,
        "peak_rss_to_field_end": field_peak,
        "peak_rss_whole_run": whole.peak_rss,
        "vertices": len(vertices),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resolutions", default="128,256,512")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=0,
        help="points evaluated at once (default: what the device evaluates best)",
    )
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # internal: a child run
    args = parser.parse_args()
    resolutions = [int(value) for value in args.resolutions.split(",")]
    if args.one is not None:
        print(json.dumps(measure(args.one, resolutions[0], args.device, args.chunk_size)))
        return

    print(f"torch {torch.__version__}, device {args.device}, chunk size {args.chunk_size}, {sys.platform}")
    with tempfile.TemporaryDirectory() as folder:
        write_random_weights(Path(folder))
        header = (
            "res",
            "load s",
            "forward s",
            "field s",
            "surface s",
            "peak RSS to field end",
            "peak RSS run",
            "vertices",
        )
        print(" | ".join(header))
        for resolution in resolutions:
            child = subprocess.run(
                [sys.executable, __file__, "--one", folder, "--resolutions", str(resolution),
                 "--device", args.device, "--chunk-size", str(args.chunk_size)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            row = json.loads(child.stdout.strip().splitlines()[-1])
            print(
                f"{resolution} | {row['load_s']:.1f} | {row['forward_s']:.1f} | {row['field_s']:.1f} | "
                f"{row['surface_s']:.1f} | {format_bytes(row['peak_rss_to_field_end'])} | "
                f"{format_bytes(row['peak_rss_whole_run'])} | {row['vertices']:,}",
                flush=True,
            )


if __name__ == "__main__":
    main()
