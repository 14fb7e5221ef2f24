"""`doctor`: what this machine offers the model, and where the weights would come from."""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
from pathlib import Path

import torch

from shared.protocol import weights_folder

from .. import __version__
from ..triposr.device import device_name, usable_devices
from ..triposr.errors import WeightsUnavailable
from ..triposr.weights import DEFAULT_WEIGHTS, cached_weights, local_weights
from .options import add_model_options


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "doctor",
        help="check Python, PyTorch, devices and weights",
        description="Print what this machine offers the model, and whether the weights are present.",
    )
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    rows = [
        ("triposr-sidecar", __version__),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("platform", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("torch", torch.__version__),
        ("devices", ", ".join(device_name(torch.device(name)) for name in usable_devices())),
        ("auto picks", usable_devices()[0]),
    ]
    if sys.platform == "darwin":
        rows.append(("MPS CPU fallback", os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK", "off")))
    rows.append(("rembg", "installed" if importlib.util.find_spec("rembg") else "not installed"))
    rows += weights_rows(args.weights)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def weights_rows(weights: str) -> list[tuple[str, str]]:
    if weights_folder(weights):
        try:
            files = local_weights(Path(weights).expanduser())
        except WeightsUnavailable as exc:
            return [("weights", f"local folder {weights}"), ("weights present", f"no: {exc}")]
        return [("weights", f"local folder {weights}"), ("weights present", f"yes ({files.checkpoint})")]
    cached = cached_weights(weights)
    source = f"Hugging Face repo {weights}" + (" (pinned revision)" if weights == DEFAULT_WEIGHTS else "")
    if cached is None:
        return [("weights", source), ("weights present", "no: downloaded on first use (about 1.7 GB)")]
    return [("weights", source), ("weights present", f"yes, cached at {cached.checkpoint}")]
