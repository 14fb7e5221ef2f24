"""The local backend: TripoSR on this machine's device, loaded once, one job at a time."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from shared.protocol import weights_folder

from ..clock import ProgressCallback
from ..failures import describe_failure
from ..jobs import JobFailed, Ticket
from ..pipeline import STAGES, GenerationParams, generate_glb
from ..triposr import TripoSR, load_model, open_image
from ..triposr.config import architecture
from ..triposr.device import device_name, resolve_precision, select_device
from ..triposr.errors import DeviceError
from ..triposr.weights import CHECKPOINT_NAME, DEFAULT_REVISION, DEFAULT_WEIGHTS
from .base import Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelState:
    state: str  # "loading" | "loaded" | "failed"
    device: str  # the device asked for until loaded, then the one the model runs on
    error_code: str | None = None
    error: str | None = None


class LocalBackend:
    name = "local"

    def __init__(
        self,
        weights: str,
        device: str,
        precision: str,
        max_image_pixels: int,
        max_resolution: int | None = None,
    ):
        self.precision = resolved_precision(device, precision)  # what the backbone runs in: "auto" decided
        self.identity = model_identity(weights, self.precision)
        self.model_state = ModelState("loading", device)  # replaced whole, so other threads read it safely
        self.network: str | None = None  # what decides its speed, with the device: once loaded
        self._weights = weights
        self._device = device
        self._max_image_pixels = max_image_pixels
        self._max_resolution = max_resolution
        self._model: TripoSR | None = None

    def prepare(self) -> None:
        started = time.perf_counter()
        try:
            model = load_model(self._weights, self._device, precision=self.precision)
        except Exception as exc:
            code, message = describe_failure(exc)
            self.model_state = ModelState("failed", self._device, code, message)
            log.error("The model could not be loaded: %s", message)
            return
        self._model = model
        self.network = f"{architecture(model.config)} {self.precision}"
        self.model_state = ModelState("loaded", device_name(model.device))
        log.info(
            "Model loaded from %s on %s in %.1f s",
            self._weights,
            device_name(model.device),
            time.perf_counter() - started,
        )

    def run(self, ticket: Ticket, report: ProgressCallback) -> Outcome:
        if self._model is None:
            raise JobFailed(self.model_state.error_code or "model_unavailable", self.model_state.error or "")
        params = ticket.params.generation
        self._check_resolution(params)
        report(STAGES[0], 0.0)  # started: decoding the image counts as preprocessing
        image = open_image(ticket.image, max_pixels=self._max_image_pixels)
        result = generate_glb(self._model, image, params, report, ticket.params.assets, ticket.name)
        return Outcome(
            glb=result.glb,
            vertices=result.vertices,
            faces=result.faces,
            device=result.device,
            model=self.identity,
            stage_seconds=result.stage_seconds,
            peak_rss_bytes=result.peak_rss_bytes,
            peak_device_bytes=result.peak_device_bytes,
        )

    def _check_resolution(self, params: GenerationParams) -> None:
        """`serve --max-local-resolution`: what this machine's memory holds, so a larger job fails at once
        (and an `auto` job moves to Replicate) instead of exhausting the memory it shares with Blender."""
        if self._max_resolution is not None and params.resolution > self._max_resolution:
            raise JobFailed(
                "out_of_memory",
                f"A resolution of {params.resolution} needs more memory than this sidecar may use "
                f"(it runs at most {self._max_resolution} locally, --max-local-resolution). Lower the "
                "resolution, or use the auto or replicate backend.",
            )


def resolved_precision(device: str, precision: str) -> str:
    """The precision that `auto` means on this device; as given where the device is unusable (loading the
    model says why)."""
    try:
        return resolve_precision(select_device(device), precision)
    except DeviceError:
        return precision


def model_identity(weights: str, precision: str) -> str:
    """Names the model in the result cache, so that other weights or precision never get old results."""
    if not weights_folder(weights):
        return f"{weights}@{DEFAULT_REVISION if weights == DEFAULT_WEIGHTS else 'main'} {precision}"
    checkpoint = Path(weights).expanduser().resolve() / CHECKPOINT_NAME
    try:
        stat = checkpoint.stat()
    except OSError:  # loading fails and says why; no job will reach the cache with it
        return f"{checkpoint} {precision}"
    return f"{checkpoint}:{stat.st_size}:{stat.st_mtime_ns} {precision}"
