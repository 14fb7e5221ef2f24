"""The worker thread: loads the model once, then runs queued jobs one at a time through the pipeline.

It reports to the socket thread over an inproc ZeroMQ socket, in the protocol's own message format, and
writes each GLB into the store's results folder before it reports the result.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import zmq

from shared.protocol import encode

from .fileio import write_atomically
from .jobs import JobCancelled, Ticket
from .pipeline import STAGES, generate_glb
from .store import result_name
from .triposr import (
    EmptySurfaceError,
    ImageError,
    TripoSR,
    TripoSRError,
    WeightsUnavailable,
    load_model,
    open_image,
)
from .triposr.device import device_name
from .triposr.weights import CHECKPOINT_NAME, DEFAULT_REVISION, DEFAULT_WEIGHTS, is_local

log = logging.getLogger(__name__)

# Progress within a stage is passed on at most this often; stage changes always are.
PROGRESS_SECONDS = 0.2
IMAGE_ERROR_CODES = {
    "empty": "image_empty",
    "unrecognized": "image_unrecognized",
    "damaged": "image_damaged",
    "too_large": "image_too_large",
    "no_foreground": "no_foreground",
    "bad_parameter": "bad_parameter",
}


@dataclass(frozen=True)
class ModelState:
    state: str  # "loading" | "loaded" | "failed"
    device: str  # the device asked for until loaded, then the one the model runs on
    error_code: str | None = None
    error: str | None = None


class Worker(threading.Thread):
    def __init__(
        self,
        context: zmq.Context,
        events_endpoint: str,
        weights: str,
        device: str,
        precision: str,
        results_dir: Path,
        max_image_pixels: int,
    ):
        super().__init__(name="worker", daemon=True)
        self.tickets: queue.SimpleQueue[Ticket | None] = queue.SimpleQueue()  # None stops the worker
        self.model_state = ModelState("loading", device)  # replaced whole, so other threads read it safely
        self.identity = model_identity(weights, precision)
        self._context = context
        self._events_endpoint = events_endpoint
        self._weights = weights
        self._device = device
        self._precision = precision
        self._results_dir = results_dir
        self._max_image_pixels = max_image_pixels
        self._events: zmq.Socket | None = None

    def run(self) -> None:
        self._events = self._context.socket(zmq.PAIR)
        self._events.connect(self._events_endpoint)
        try:
            model = self._load()
            while (ticket := self.tickets.get()) is not None:
                if ticket.start():
                    self._run(model, ticket)
        finally:
            self._events.close()

    def _load(self) -> TripoSR | None:
        started = time.perf_counter()
        try:
            model = load_model(self._weights, self._device, precision=self._precision)
        except Exception as exc:
            code, message = describe_failure(exc)
            self.model_state = ModelState("failed", self._device, code, message)
            log.error("The model could not be loaded: %s", message)
            return None
        self.model_state = ModelState("loaded", device_name(model.device))
        log.info(
            "Model loaded from %s on %s in %.1f s",
            self._weights,
            device_name(model.device),
            time.perf_counter() - started,
        )
        return model

    def _run(self, model: TripoSR | None, ticket: Ticket) -> None:
        if model is None:
            self._emit("error", ticket.job, code=self.model_state.error_code, message=self.model_state.error)
            return
        report = ProgressReporter(ticket, self._emit)
        try:
            report(STAGES[0], 0.0)  # started: decoding the image counts as preprocessing
            image = open_image(ticket.image, max_pixels=self._max_image_pixels)
            result = generate_glb(model, image, ticket.params, report)
            write_atomically(self._results_dir / result_name(ticket.job), result.glb)
        except JobCancelled:
            self._emit("cancelled", ticket.job)
        except Exception as exc:
            code, message = describe_failure(exc)
            self._emit("error", ticket.job, code=code, message=message)
        else:
            self._emit(
                "result",
                ticket.job,
                payloads={"glb": result.glb},
                vertices=result.vertices,
                faces=result.faces,
                device=result.device,
                stage_seconds={stage: round(seconds, 4) for stage, seconds in result.stage_seconds.items()},
                peak_rss_bytes=result.peak_rss_bytes,
                peak_device_bytes=result.peak_device_bytes,
                glb_bytes=len(result.glb),
            )

    def _emit(self, message_type: str, job: str, **fields) -> None:
        self._events.send_multipart(encode(message_type, job, **fields), copy=False)


class ProgressReporter:
    """The pipeline's progress callback: stops a cancelled job, and passes progress on without flooding."""

    def __init__(self, ticket: Ticket, emit):
        self._ticket = ticket
        self._emit = emit
        self._stage: str | None = None
        self._sent_at = 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        self._ticket.raise_if_cancelled()
        now = time.monotonic()
        if stage != self._stage or fraction >= 1.0 or now - self._sent_at >= PROGRESS_SECONDS:
            self._stage, self._sent_at = stage, now
            self._emit("progress", self._ticket.job, stage=stage, fraction=fraction)


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """The error code and the sentence for a job or a model load that failed."""
    if isinstance(exc, ImageError):
        return IMAGE_ERROR_CODES.get(exc.reason, "image_damaged"), str(exc)
    if isinstance(exc, EmptySurfaceError):
        return "empty_surface", str(exc)
    if isinstance(exc, WeightsUnavailable):
        return "weights_unavailable", str(exc)
    if isinstance(exc, TripoSRError):  # the checkpoint, config or device
        return "model_unavailable", str(exc)
    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)) or "out of memory" in str(exc):
        return "out_of_memory", (
            "The job ran out of memory. Lower the resolution or the chunk size, or close programs that use "
            "the same memory."
        )
    log.error("A job failed unexpectedly", exc_info=exc)
    return (
        "internal",
        f"The sidecar failed unexpectedly ({type(exc).__name__}: {exc}); its log has the details.",
    )


def model_identity(weights: str, precision: str) -> str:
    """Names the model in the result cache, so that other weights or precision never get old results."""
    if not is_local(weights):
        return f"{weights}@{DEFAULT_REVISION if weights == DEFAULT_WEIGHTS else 'main'} {precision}"
    checkpoint = Path(weights).expanduser().resolve() / CHECKPOINT_NAME
    try:
        stat = checkpoint.stat()
    except OSError:  # loading fails and says why; no job will reach the cache with it
        return f"{checkpoint} {precision}"
    return f"{checkpoint}:{stat.st_size}:{stat.st_mtime_ns} {precision}"
