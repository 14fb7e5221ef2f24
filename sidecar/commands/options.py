"""Options shared by the subcommands that load the model."""

from __future__ import annotations

import argparse
from pathlib import Path

import platformdirs

from ..triposr.device import DEVICE_CHOICES, PRECISION_CHOICES
from ..triposr.weights import DEFAULT_WEIGHTS


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights",
        default=DEFAULT_WEIGHTS,
        help="a folder holding config.yaml and model.ckpt, or a Hugging Face repo id "
        f"(default: {DEFAULT_WEIGHTS}, downloaded once into the Hugging Face cache)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=DEVICE_CHOICES,
        help="where the network runs; auto picks CUDA, then MPS, then the CPU (default: auto)",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISION_CHOICES,
        help="dtype of the backbone, most of the network's work; auto picks bfloat16 where the device "
        "computes it natively (a recent GPU, a CPU with AVX512-BF16 or AMX, an M2 or later) and float32 "
        "elsewhere; half precision moves the surface by about 4e-4 of the model's size (default: auto)",
    )


def add_data_dir_option(parser: argparse.ArgumentParser, what: str) -> None:
    """The sidecar's data folder: `serve` keeps its jobs there, `bench` the runs it measures."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=platformdirs.user_data_path("triposr-sidecar", appauthor=False),
        metavar="DIR",
        help=f"{what} (default: %(default)s)",
    )
