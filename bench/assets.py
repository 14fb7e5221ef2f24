"""The asset stages on this CPU: clean-up, simplification, UV atlas, bake and GLB, each with its peak RSS.

The surface is the object-like field of `bench/extraction.py` (the full-size network with seeded random
weights, its scene code low-pass filtered) at resolution 256: about 10^5 vertices, as a real object has. The
bake queries that field's colour, so it costs what a real job's does. For comparison, the full-density
surface is unwrapped too, as the official `--bake-texture` unwraps it.

    python bench/assets.py [--resolution 256] [--cases 20000:1024,5000:2048] [--no-full-unwrap]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from extraction import object_like_field

from sidecar.assets.bake import bake
from sidecar.assets.cleanup import drop_small_pieces
from sidecar.assets.decimate import decimate
from sidecar.assets.options import DEFAULT_MIN_PIECE
from sidecar.assets.surface import Surface
from sidecar.assets.unwrap import unwrap
from sidecar.benchmark import bench_image, write_random_weights
from sidecar.glb import surface_to_glb
from sidecar.memory import PeakMemory, format_bytes
from sidecar.pipeline import field_colour_source
from sidecar.triposr import load_model
from sidecar.triposr.mesh import find_surface
from sidecar.triposr.model import DEFAULT_THRESHOLD
from sidecar.triposr.preprocess import prepare_image

DEFAULT_CASES = "20000:1024,5000:2048"


def timed(name: str, rows: list[list[str]], work: Callable[[], Any]) -> tuple[Any, float]:
    """Run one stage; add its seconds, the process's peak RSS, and the peak of what Python and numpy held
    for it (tracemalloc: RSS seldom grows, as the allocator reuses what the surface extraction freed)."""
    with PeakMemory() as memory:
        tracemalloc.start()
        started = time.perf_counter()
        result = work()
        seconds = time.perf_counter() - started
        _, heap_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    rows.append([name, f"{seconds:.2f} s", format_bytes(memory.peak_rss), format_bytes(heap_peak)])
    return result, seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--cases", default=DEFAULT_CASES, help="faces:texture size, comma-separated")
    parser.add_argument("--no-full-unwrap", dest="full_unwrap", action="store_false")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        write_random_weights(Path(folder))
        model = load_model(folder, device="cpu")
    scene_code = model.encode(prepare_image(bench_image()))[0]
    query, notes = object_like_field(model, scene_code)
    vertices, faces = find_surface(query, model.radius, args.resolution, DEFAULT_THRESHOLD, model.chunk_size)
    raw = Surface(vertices, faces)
    source = field_colour_source(query, model.chunk_size)
    print(
        f"object-like field at {args.resolution} ({notes}): {len(raw.vertices):,} vertices, "
        f"{len(raw.faces):,} faces; weights: seeded random, full size"
    )

    totals = {}
    for case in args.cases.split(","):
        target, size = map(int, case.split(":"))
        rows = [["stage", "time", "peak RSS", "heap peak"]]
        cleaned, cleanup_s = timed("cleanup", rows, lambda: drop_small_pieces(raw, DEFAULT_MIN_PIECE))
        simple, decimate_s = timed("decimate", rows, lambda s=cleaned, t=target: decimate(s, t))
        unwrapped, unwrap_s = timed("unwrap", rows, lambda s=simple, z=size: unwrap(s, z))
        baked, bake_s = timed("bake", rows, lambda u=unwrapped, z=size: bake(u, z, source))
        glb, _ = timed("export", rows, lambda s=baked: surface_to_glb(s))
        together = cleanup_s + decimate_s + unwrap_s + bake_s
        print(f"\n{len(simple.faces):,} faces, {size}^2 texture, {len(glb) / 1e6:.1f} MB GLB")
        for row in rows:
            print("  " + "  ".join(cell.ljust(10) for cell in row))
        print(f"  clean-up + decimate + unwrap + bake: {together:.2f} s")
        totals[case] = together
    if args.full_unwrap:
        rows = [["stage", "time", "peak RSS", "heap peak"]]
        _, full_s = timed("unwrap", rows, lambda: unwrap(raw, 1024))
        print(f"\nthe full-density surface ({len(raw.faces):,} faces) unwrapped for 1024^2:")
        for row in rows:
            print("  " + "  ".join(cell.ljust(10) for cell in row))
        for case, together in totals.items():
            print(f"  {case}: the four stages take {together / full_s:.2f} of that")


if __name__ == "__main__":
    main()
