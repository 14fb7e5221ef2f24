"""How long a cancel waits while the full-size network encodes an image: the job stops at the next check for
cancellation, made before each block of the backbone (and at the first progress report of the next stage).

    python bench/cancel_wait.py [--device cpu] [--precision auto] [--cancels 3]

The network is the official config with seeded random weights (no download; the weights do not change how long
a block takes). One timed encoding gives the gap between checks: before the first block (the image's ViT
runs there), between blocks, and after the last (the upsampler). The worst of those is the worst wait.
Then `--cancels` encodings are cancelled from another thread at random moments, each wait measured as a job
sees it.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import threading
import time
from itertools import pairwise

import torch

from sidecar.benchmark import bench_image
from sidecar.triposr.config import OFFICIAL_CONFIG, load_config
from sidecar.triposr.device import device_name, resolve_precision, select_device
from sidecar.triposr.loading import build_model


class Cancelled(Exception):
    pass


def checkpoints(model, pixels) -> list[tuple[str, float]]:
    """Each stretch of one encoding between two checks for cancellation, and how long it took."""
    times = [time.perf_counter()]
    model.encode(pixels, lambda fraction: times.append(time.perf_counter()))
    times.append(time.perf_counter())
    blocks = len(times) - 2
    names = ["before block 1 (image ViT)", *(f"block {index}" for index in range(1, blocks))]
    names.append(f"block {blocks} and the upsampler")
    return [(name, later - earlier) for name, (earlier, later) in zip(names, pairwise(times), strict=True)]


def cancelled_wait(model, pixels, seconds: float) -> float:
    """Cancel an encoding `seconds` after it starts: the time until it stops."""
    asked = threading.Event()
    at: list[float] = []

    def cancel() -> None:
        at.append(time.perf_counter())
        asked.set()

    def progress(fraction: float) -> None:
        if asked.is_set():
            raise Cancelled

    timer = threading.Timer(seconds, cancel)
    timer.start()
    with contextlib.suppress(Cancelled):
        model.encode(pixels, progress)
    timer.join()
    return time.perf_counter() - at[0]  # an encoding that ended first: the next stage's first check


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    parser.add_argument("--cancels", type=int, default=3)
    args = parser.parse_args()

    device = select_device(args.device)
    precision = resolve_precision(device, args.precision)
    torch.manual_seed(0)
    model = build_model(load_config(OFFICIAL_CONFIG), device=device)
    model.use_backbone_dtype(getattr(torch, precision))
    pixels = model.preprocess(bench_image())
    print(f"torch {torch.__version__}, {device_name(device)}, backbone in {precision}")
    model.encode(pixels)  # warm up

    stretches = checkpoints(model, pixels)
    total = sum(seconds for _, seconds in stretches)
    name, worst = max(stretches, key=lambda stretch: stretch[1])
    between = [seconds for name, seconds in stretches[1:-1]]
    print(f"encode {total:.2f} s, {len(stretches) - 1} checks for cancellation")
    print(f"between blocks: {min(between):.3f} to {max(between):.3f} s")
    print(f"first check after {stretches[0][1]:.3f} s; the last stretch {stretches[-1][1]:.3f} s")
    print(f"worst wait: {worst:.3f} s ({name}); without the checks it would be up to {total:.2f} s")
    chance = random.Random(0)
    for _ in range(args.cancels):
        moment = chance.uniform(0.0, total)
        print(f"cancelled {moment:.2f} s in: stopped {cancelled_wait(model, pixels, moment):.3f} s later")


if __name__ == "__main__":
    main()
