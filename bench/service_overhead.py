"""What the service adds to a job: submit-to-result through a real sidecar against the same work in-process,
and the round trip of a 20 MB GLB over loopback.

    python bench/service_overhead.py [--runs 5] [--resolutions 32,64,128]

The tiny test model on the CPU keeps the model's own time small, so the difference is the service's: the
queue, the atomic write of the GLB into the store, the database, and moving the bytes over TCP. Each job gets
new image bytes (the same pixels) so that the store cannot answer it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from service_harness import EventLog, unique_png  # noqa: E402
from sidecar_process import Launcher  # noqa: E402

from shared.client import SidecarClient  # noqa: E402
from sidecar.pipeline import GenerationParams, generate_glb  # noqa: E402
from sidecar.triposr import load_model, open_image  # noqa: E402

TINY = ROOT / "tests" / "fixtures" / "triposr" / "tiny"
# The resolution at which the tiny model's GLB is about 20 MB.
BIG_GLB_RESOLUTION = 116


def in_process(model, image: bytes, resolution: int) -> float:
    data = unique_png(image)
    started = time.perf_counter()
    generate_glb(model, open_image(data), GenerationParams(resolution=resolution))
    return time.perf_counter() - started


def through_sidecar(client: SidecarClient, image: bytes, resolution: int) -> tuple[float, float, int]:
    """Submit to result, the part of it the pipeline took inside the sidecar, and the GLB's size."""
    data = unique_png(image)
    log = EventLog(client)
    started = time.monotonic()
    job = client.submit(data, {"resolution": resolution})
    log.until_done(job)
    result = log.terminal(job)
    assert result.event.type == "result", result.event.header
    header = result.event.header
    return result.at - started, header["total_seconds"], header["glb_bytes"]


def fetch_round_trips(client: SidecarClient, job: str, deliver: str, runs: int) -> tuple[list[float], int]:
    seconds, size = [], 0
    for _ in range(runs):
        log = EventLog(client)
        started = time.monotonic()
        client.fetch(job, deliver=deliver)
        log.until_done(job)
        seconds.append(log.terminal(job).at - started)
        size = log.terminal(job).event.header["glb_bytes"]
    return seconds, size


def median_ms(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1000:8.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--resolutions", default="32,64,128")
    args = parser.parse_args()
    image = (TINY / "input.png").read_bytes()
    resolutions = [int(text) for text in args.resolutions.split(",")]

    with tempfile.TemporaryDirectory() as folder:
        launcher = Launcher(Path(folder), TINY)
        try:
            sidecar = launcher.start()
            with sidecar.client() as client:
                run_on_sidecar(client, image, resolutions, args.runs)
                client.shutdown()
            sidecar.process.wait(timeout=30)
        finally:
            launcher.stop_all()


def run_on_sidecar(client: SidecarClient, image: bytes, resolutions: list[int], runs: int) -> None:
    model = load_model(str(TINY), device="cpu")
    through_sidecar(client, image, resolutions[0])  # the sidecar's model loads and warms up
    in_process(model, image, resolutions[0])
    print(f"Tiny model, CPU, medians of {runs} runs; the benchmark and the sidecar take turns on the CPU.")
    print("overhead: submit-to-result minus the pipeline's own time inside the sidecar")
    print(f"{'resolution':>10}  {'GLB':>8}  {'in-process':>11}  {'via sidecar':>11}  {'overhead':>11}")
    for resolution in resolutions:
        direct, served, overhead = [], [], []
        for _ in range(runs):  # interleaved, so that a change in the machine's load hits both alike
            direct.append(in_process(model, image, resolution))
            wall, pipeline, size = through_sidecar(client, image, resolution)
            served.append(wall)
            overhead.append(wall - pipeline)
        times = "  ".join(median_ms(seconds) for seconds in (direct, served, overhead))
        print(f"{resolution:>10}  {size / 1e6:5.1f} MB  {times}")

    big = client.submit(unique_png(image), {"resolution": BIG_GLB_RESOLUTION})
    EventLog(client).until_done(big)
    as_bytes, size = fetch_round_trips(client, big, "bytes", runs)
    as_path, _ = fetch_round_trips(client, big, "path", runs)
    print(f"\nfetch of a stored {size / 1e6:.1f} MB GLB over loopback, request to result (median of {runs}):")
    print(f"  as bytes  {median_ms(as_bytes)}  ({size / 1e6 / statistics.median(as_bytes):.0f} MB/s)")
    print(f"  as a path {median_ms(as_path)}")


if __name__ == "__main__":
    main()
