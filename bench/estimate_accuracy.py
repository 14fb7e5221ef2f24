"""How close the sidecar's local estimates come to the jobs it then runs, after a `bench` has seeded them.

`bench` measures the resolutions of `--bench` into a fresh data folder. A sidecar on that folder estimates
each resolution of `--targets` (those `bench` ran are "measured", the others "scaled"), then runs `--repeats`
jobs at each, on images of their own, and the estimate is compared with the median job. Without `--weights`
it uses seeded random weights of the full-size network, as `bench` does.

    python bench/estimate_accuracy.py [--weights DIR] [--bench 128,256] [--targets 256,192] [--repeats 3]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from shared.client import SidecarClient
from sidecar.benchmark import bench_png, write_random_weights

LOAD_TIMEOUT = 600.0


def free_endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def run_job(client: SidecarClient, image: bytes, resolution: int) -> float:
    job = client.submit(image, {"resolution": resolution})
    while True:
        for event in client.poll(timeout=5.0):
            if event.job == job and event.type == "result":
                return sum(event.header["stage_seconds"].values())
            if event.job == job and event.type in ("error", "cancelled"):
                raise SystemExit(f"the job at {resolution} failed: {event.header.get('message')}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", type=Path, help="a weights folder (default: full-size random weights)")
    parser.add_argument("--bench", default="128,256", help="resolutions bench measures")
    parser.add_argument("--targets", default="256,192", help="resolutions estimated, then run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="estimate-accuracy-") as scratch:
        folder = Path(scratch)
        weights = args.weights
        if weights is None:
            weights = folder / "weights"
            weights.mkdir()
            write_random_weights(weights)
        data_dir = folder / "data"
        sidecar = [sys.executable, "-m", "sidecar"]
        model = ["--weights", str(weights), "--device", "cpu"]
        print(f"bench at {args.bench}...", flush=True)
        subprocess.run(
            [*sidecar, "bench", *model, "--resolutions", args.bench, "--data-dir", str(data_dir)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        endpoint = free_endpoint()
        log = (folder / "serve.log").open("wb")
        serve = [*sidecar, "serve", *model, "--data-dir", str(data_dir), "--bind", endpoint]
        server = subprocess.Popen(serve, stdout=log, stderr=subprocess.STDOUT)
        try:
            with SidecarClient(endpoint, heartbeat_timeout=60.0) as client:
                deadline = time.monotonic() + LOAD_TIMEOUT
                while client.hello(timeout=10.0)["weights"] != "loaded":
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit((folder / "serve.log").read_text())
                    time.sleep(0.5)
                print(f"{'resolution':>10}  {'basis':>8}  {'estimate':>9}  {'jobs (median)':>13}  error")
                variant = 0
                for resolution in (int(value) for value in args.targets.split(",")):
                    local = client.estimate({"resolution": resolution})["local"]
                    times = []
                    for _ in range(args.repeats):
                        variant += 1
                        times.append(run_job(client, bench_png(variant), resolution))
                    measured = median(times)
                    error = local["seconds"] / measured - 1
                    jobs = ", ".join(f"{seconds:.1f}" for seconds in times)
                    print(
                        f"{resolution:>10}  {local['basis']:>8}  {local['seconds']:>7.1f} s  "
                        f"{measured:>11.1f} s  {error:+.1%}   (jobs: {jobs} s)",
                        flush=True,
                    )
        finally:
            server.terminate()
            server.wait()
            log.close()


if __name__ == "__main__":
    main()
