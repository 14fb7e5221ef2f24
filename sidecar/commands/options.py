"""Options shared by the subcommands that load the model."""

from __future__ import annotations

import argparse

from ..triposr.device import DEVICE_CHOICES, PRECISIONS
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
        default="float32",
        choices=tuple(PRECISIONS),
        help="dtype of the backbone, most of the network's work; half precision is faster on GPUs and "
        "changes the mesh slightly (default: float32)",
    )
