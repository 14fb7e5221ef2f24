"""What half precision in the backbone costs in accuracy, against float32 on the same machine.

For the tiny test model (golden fixture weights) and the full-size network with seeded random weights,
and for bfloat16 and float16: the largest scene-code error (absolute, and relative to the codes'
spread), the density error at 65,536 random points (relative), and the mesh at resolution 128 (vertex
count, and the mean and largest distance from each half-precision vertex to the float32 surface, in
model units). Speed on a CPU says nothing about a GPU, so encode time is printed only as a sanity check.

    python bench/half_precision.py [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from sidecar.benchmark import bench_image, write_random_weights
from sidecar.triposr import load_model
from sidecar.triposr.preprocess import prepare_image

TINY = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "triposr" / "tiny"


def compare(weights: str, device: str, pixels: np.ndarray) -> None:
    points = (torch.rand(65536, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 0.87
    reference = None
    for precision in ("float32", "bfloat16", "float16"):
        model = load_model(weights, device=device, precision=precision)
        started = time.perf_counter()
        codes = model.encode(pixels)
        encode_seconds = time.perf_counter() - started
        density, _ = model.query(codes[0], points)
        mesh = model.extract_mesh(codes[0], resolution=128)
        if reference is None:
            reference = codes.cpu(), density, cKDTree(mesh.vertices)
            print(f"  float32   encode {encode_seconds:.2f} s, {len(mesh.vertices):,} vertices")
            continue
        ref_codes, ref_density, ref_tree = reference
        code_error = (codes.cpu() - ref_codes).abs().max().item()
        density_error = ((density - ref_density).abs() / ref_density.abs().clamp_min(1e-6)).max().item()
        distance, _ = ref_tree.query(mesh.vertices)
        print(
            f"  {precision:<9} encode {encode_seconds:.2f} s, scene codes max error {code_error:.2e} "
            f"({code_error / ref_codes.std().item():.2%} of their spread), density max relative error "
            f"{density_error:.2e}, {len(mesh.vertices):,} vertices, distance to the float32 surface "
            f"mean {distance.mean():.2e} max {distance.max():.2e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    pixels = prepare_image(bench_image())
    print(f"torch {torch.__version__}, device {args.device}")
    print("tiny test model:")
    compare(str(TINY), args.device, pixels)
    print("full-size network, seeded random weights:")
    with tempfile.TemporaryDirectory() as folder:
        write_random_weights(Path(folder))
        compare(folder, args.device, pixels)


if __name__ == "__main__":
    main()
