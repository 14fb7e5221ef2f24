"""TripoSR inference in plain PyTorch, loading the official `stabilityai/TripoSR` checkpoint."""

from .config import TripoSRConfig, load_config
from .device import select_device
from .errors import (
    ConfigError,
    DeviceError,
    EmptySurfaceError,
    ImageError,
    ModelLoadError,
    TripoSRError,
    WeightsUnavailable,
)
from .loading import build_model, load_model
from .model import TripoSR
from .preprocess import open_image
from .weights import DEFAULT_WEIGHTS

__all__ = [
    "DEFAULT_WEIGHTS",
    "ConfigError",
    "DeviceError",
    "EmptySurfaceError",
    "ImageError",
    "ModelLoadError",
    "TripoSR",
    "TripoSRConfig",
    "TripoSRError",
    "WeightsUnavailable",
    "build_model",
    "load_config",
    "load_model",
    "open_image",
    "select_device",
]
