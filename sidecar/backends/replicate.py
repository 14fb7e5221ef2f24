"""The replicate backend: a job as a prediction on Replicate, made with the official `replicate` client.

The image is uploaded once, the prediction created (waiting and trying again while Replicate rate-limits the
account), then followed until it ends: its status and the progress bar in its logs become the job's progress,
and a cancelled job cancels the prediction, so that it stops costing. Every request has a deadline, and so
does the prediction. The output becomes the same GLB a local job makes (`outputs.py`). The token goes to
Replicate and nowhere else: not to other hosts, nor into messages, logs or the store.

This module needs the optional `replicate` package; `replicate_settings.refusal` says whether it is there.
"""

from __future__ import annotations

import io
import logging
import os
import random
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import httpx
from PIL import Image
from replicate import Client
from replicate.exceptions import ReplicateError, ReplicateException
from replicate.helpers import FileOutput, transform_output
from replicate.prediction import Prediction

from ..assets.finish import finish
from ..assets.options import TEXTURE_SIZES, AssetOptions
from ..assets.sampling import mesh_colour_source
from ..assets.surface import Surface
from ..clock import ProgressCallback, StageClock
from ..glb import surface_to_glb
from ..jobs import JobCancelled, JobFailed, Ticket
from ..triposr import open_image
from .base import Outcome
from .models import ReplicateModel
from .outputs import describe, find_mesh, read_surface
from .replicate_settings import BASE_URL_VARIABLE, TOKEN_VARIABLE, TOKENS_PAGE, ReplicateSettings

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.replicate.com"
RATE_LIMIT_TRIES = 6
MAX_RETRY_WAIT = 30.0
MAX_OUTPUT_BYTES = 1 << 30
LOG_TAIL_LINES = 12
LOG_TAIL_CHARACTERS = 1500
TERMINAL_STATUSES = ("succeeded", "failed", "canceled")
_AVAILABLE_IN = re.compile(r"available in (\d+(?:\.\d+)?) second", re.IGNORECASE)


class DeadlineTransport(httpx.HTTPTransport):
    """Gives every request a deadline: the client sends its file uploads with none at all, so a server that
    stops answering would hold the job for ever."""

    def __init__(self, seconds: float):
        super().__init__()
        self._seconds = seconds

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        limits = request.extensions.get("timeout", {})
        request.extensions["timeout"] = {
            phase: self._seconds if limits.get(phase) is None else min(limits[phase], self._seconds)
            for phase in ("connect", "read", "write", "pool")
        }
        started = time.monotonic()
        try:
            return super().handle_request(request)
        except httpx.TimeoutException as exc:
            exc.waited = time.monotonic() - started  # for the message that says how long it waited
            raise


@dataclass
class Watch:
    """A prediction as the sidecar follows it: its stage ("starting" while Replicate boots the model, then
    "predict"), since when, and how far its progress bar is."""

    prediction: Prediction
    clock: StageClock
    stage: str = ""
    since: float = 0.0
    fraction: float = 0.0

    def see(self) -> None:
        """Follow the prediction's status: a stage that has ended is timed and reported done."""
        current = "starting" if self.prediction.status == "starting" else "predict"
        if current != self.stage:
            self.end_stage()
            self.stage, self.since, self.fraction = current, time.perf_counter(), 0.0

    def end_stage(self) -> None:
        if self.stage:
            self.clock.seconds[self.stage] = time.perf_counter() - self.since
            self.clock.report(self.stage, 1.0)

    def cost(self, metrics: dict[str, float], price_per_second: float) -> float:
        """Replicate bills the time the model ran, which its metrics report; where they do not (a prediction
        cancelled, or out of reach), the sidecar's own clock is the estimate."""
        running = time.perf_counter() - self.since if self.stage == "predict" else 0.0
        seconds = metrics.get("predict_time", self.clock.seconds.get("predict", running))
        return round(seconds * price_per_second, 6)


class ReplicateBackend:
    name = "replicate"

    def __init__(self, settings: ReplicateSettings, token: str, max_image_pixels: int):
        self.models = settings.models
        self._token = token
        self._base_url = os.environ.get(BASE_URL_VARIABLE) or DEFAULT_BASE_URL
        self._max_image_pixels = max_image_pixels
        self._request_timeout = settings.request_timeout
        self._job_timeout = settings.job_timeout
        self._clients = threading.local()  # one client, and so one connection pool, per thread

    def __repr__(self) -> str:  # the token stays out of tracebacks
        return f"ReplicateBackend({self._base_url!r}, models={list(self.models)})"

    def prepare(self) -> None:
        """Nothing to load: each thread makes its client when it first needs one."""

    def run(self, ticket: Ticket, report: ProgressCallback) -> Outcome:
        model = self.models[ticket.params.replicate_model]
        # A bad image is refused here, as locally, before anything is paid for.
        image = open_image(ticket.image, max_pixels=self._max_image_pixels)
        client = self._client()
        clock = StageClock(report)
        with self._errors(model):
            with clock.stage("upload"):
                uploaded = client.files.create(
                    io.BytesIO(ticket.image),
                    filename=f"image.{(image.format or 'png').lower()}",
                    content_type=Image.MIME.get(image.format or "", "application/octet-stream"),
                )
            # From here on a prediction runs, and is paid for: a cancel, a deadline or a failure below
            # cancels it, and its cost is kept whatever happens.
            watch = Watch(self._create(client, model, ticket, uploaded.urls["get"]), clock)
            prediction = watch.prediction
            ticket.record(prediction=prediction.id)
            log.info("Job %s is prediction %s of %s", ticket.job, prediction.id, model.model)
            try:
                self._follow(client, watch, ticket)
            except (JobCancelled, JobFailed, ReplicateException, httpx.HTTPError) as exc:
                raise self._stopped(client, watch, model, exc) from None
            metrics = _metrics(prediction)
            cost = watch.cost(metrics, model.price_per_second)
            if prediction.status != "succeeded":
                raise self._unfinished(prediction, model, cost, metrics)
            output = transform_output(prediction.output, client)
            with clock.stage("download"):
                item = find_mesh(output, model.output, model.model)
                data = self._fetch(item, model)
            with clock.stage("convert"):
                original = read_surface(data, str(item), model.model, model.matrix(), model.vertex_colours)
        surface = finish(original, mesh_colour_source(original), cloud_options(original, ticket), clock)
        with clock.stage("export"):
            glb = surface_to_glb(surface, ticket.name)
        return Outcome(
            glb=glb,
            vertices=len(surface.vertices),
            faces=len(surface.faces),
            device=model.hardware,
            model=model.identity,
            stage_seconds=clock.seconds,
            cost=cost,
            metrics=metrics,
            prediction=prediction.id,
        )

    def _client(self) -> Client:
        client = getattr(self._clients, "client", None)
        if client is None:
            client = self._clients.client = self._new_client()
        return client

    def _new_client(self) -> Client:
        return Client(
            api_token=self._token,
            base_url=self._base_url,
            timeout=httpx.Timeout(self._request_timeout),
            transport=DeadlineTransport(self._request_timeout),
        )

    def _create(self, client: Client, model: ReplicateModel, ticket: Ticket, image_url: str) -> Prediction:
        """Create the prediction; while Replicate rate-limits, wait as it asks (or longer each time)."""
        target = {"version": model.version} if model.version else {"model": model.model}
        inputs = model.inputs(ticket.params.generation, image=image_url)
        for attempt in range(1, RATE_LIMIT_TRIES):
            try:
                return client.predictions.create(input=inputs, **target)
            except ReplicateError as exc:
                if exc.status != 429:
                    raise
                wait = _retry_wait(exc.detail, attempt)
                log.info("Replicate is rate-limiting job %s; trying again in %.1f s", ticket.job, wait)
                ticket.wait_cancelled(wait)
        return client.predictions.create(input=inputs, **target)  # the last try: a refusal is the job's

    def _follow(self, client: Client, watch: Watch, ticket: Ticket) -> None:
        """Poll the prediction until it ends, reporting its status (and the progress bar in its logs)."""
        deadline = time.monotonic() + self._job_timeout
        prediction = watch.prediction
        while True:
            watch.see()
            if prediction.status in TERMINAL_STATUSES:
                break
            if watch.stage == "predict" and (progress := prediction.progress) is not None:
                watch.fraction = max(
                    watch.fraction, min(progress.percentage, 1.0)
                )  # a 2nd bar must not go back
            watch.clock.report(watch.stage, watch.fraction)
            if time.monotonic() > deadline:
                raise JobFailed(
                    "remote_timeout",
                    f"Replicate had not finished after {self._job_timeout:g} s, so the prediction was "
                    "cancelled. Submit the job again, or allow more time (serve --replicate-job-timeout).",
                )
            ticket.wait_cancelled(client.poll_interval)
            prediction.reload()
        watch.end_stage()

    def _stopped(self, client: Client, watch: Watch, model: ReplicateModel, exc: Exception) -> Exception:
        """The job ends while its prediction may still run (and be billed): cancel the prediction, and have
        the job's end carry what it cost. A Replicate that stopped answering is not waited for a second
        time: the cancel goes on in the background, and the sidecar's clock says what the prediction cost."""
        prediction_id = watch.prediction.id
        if isinstance(exc, httpx.TransportError):
            threading.Thread(
                target=self._cancel, args=(self._new_client(), prediction_id), daemon=True
            ).start()
            metrics: dict[str, float] = {}
        else:
            metrics = _metrics(self._cancel(client, prediction_id))
        record = {
            "cost": watch.cost(metrics, model.price_per_second),
            "metrics": metrics,
            "prediction": prediction_id,
        }
        if isinstance(exc, JobCancelled):
            return JobCancelled(str(exc), **record)
        failure = exc if isinstance(exc, JobFailed) else self._failure(exc, model)
        failure.record.update(record)
        return failure

    def _cancel(self, client: Client, prediction_id: str) -> Prediction | None:
        """Cancel a prediction: the prediction as Replicate reports it then, or None without an answer."""
        try:
            prediction = client.predictions.cancel(prediction_id)
        except (ReplicateException, httpx.HTTPError) as exc:
            reason = self._redact(str(exc)) or type(exc).__name__
            log.warning("Prediction %s could not be cancelled on Replicate: %s", prediction_id, reason)
            return None
        log.info("Cancelled prediction %s on Replicate", prediction_id)
        return prediction

    def _fetch(self, item: Any, model: ReplicateModel) -> bytes:
        """The output file's bytes: a FileOutput through the client (https: and data: URIs); a plain http:
        URL, which the client leaves a string, straight from the server that named it, without the token."""
        if isinstance(item, FileOutput):
            return _read_capped(iter(item), describe(item.url))
        if isinstance(item, str) and item.startswith("http://"):
            return _read_capped(_download(item, self._request_timeout), item)
        raise JobFailed("output_unusable", f"{model.model} returned {_what(item)} where a file was expected.")

    def _unfinished(
        self, prediction: Prediction, model: ReplicateModel, cost: float, metrics: dict[str, float]
    ) -> JobFailed:
        record = {"cost": cost, "metrics": metrics, "prediction": prediction.id}
        if prediction.status == "canceled":
            return JobFailed(
                "prediction_failed",
                "The prediction was cancelled on Replicate (on its website, or by another program) before it "
                "finished.",
                **record,
            )
        message = f"{model.model} failed on Replicate: {self._redact(prediction.error or 'no reason given')}."
        tail = _log_tail(self._redact(prediction.logs or ""))
        if tail:
            message += f" The end of its log:\n{tail}"
        return JobFailed("prediction_failed", message, **record)

    @contextmanager
    def _errors(self, model: ReplicateModel) -> Iterator[None]:
        """Replicate's refusals and the network's failures, as our error codes with a sentence each."""
        try:
            yield
        except (ReplicateError, httpx.HTTPError) as exc:
            raise self._failure(exc, model) from None

    def _failure(self, exc: ReplicateException | httpx.HTTPError, model: ReplicateModel) -> JobFailed:
        if isinstance(exc, ReplicateError):
            return self._refused(exc, model)
        if isinstance(exc, httpx.TimeoutException):
            waited = getattr(exc, "waited", self._request_timeout)
            return JobFailed(
                "remote_timeout",
                f"Replicate stopped answering: no reply after {waited:.1f} s of waiting (serve "
                "--replicate-timeout). Submit the job again later, or allow more time.",
            )
        if isinstance(
            exc, httpx.HTTPStatusError
        ):  # an output download (the API's answers are ReplicateErrors)
            return JobFailed(
                "remote_error",
                f"Downloading the model from {describe(str(exc.request.url))} failed with HTTP "
                f"{exc.response.status_code}. Submit the job again.",
            )
        if isinstance(exc, httpx.TransportError):
            reason = self._redact(str(exc)) or type(exc).__name__
            return JobFailed(
                "network_down",
                f"Cannot reach Replicate at {self._base_url} ({reason}). Check the internet connection, then "
                "submit the job again.",
            )
        return JobFailed("remote_error", f"Replicate failed: {self._redact(str(exc)) or type(exc).__name__}.")

    def _refused(self, exc: ReplicateError, model: ReplicateModel) -> JobFailed:
        detail = self._redact(exc.detail or exc.title or "no detail given")
        if exc.status == 401:
            return JobFailed(
                "token_rejected",
                f"Replicate did not accept the API token ({detail}). Check {TOKEN_VARIABLE}, or Replicate "
                f"Token in the add-on's preferences, and restart the sidecar. Tokens are at {TOKENS_PAGE}.",
            )
        if exc.status == 402:
            return JobFailed(
                "billing_required",
                f"Replicate will not run models for this account until it has credit or a payment method "
                f"({detail}). Set up billing at https://replicate.com/account/billing.",
            )
        if exc.status == 429:
            return JobFailed(
                "rate_limited",
                f"Replicate is still rate-limiting this account after {RATE_LIMIT_TRIES} tries ({detail}). "
                "Submit the job again in a minute.",
            )
        if exc.status == 404:
            return JobFailed(
                "model_unavailable",
                f"Replicate has no {model.identity.removeprefix('replicate:')} ({detail}). Check the model's "
                "entry in the Replicate models file (serve --replicate-models).",
            )
        if exc.status == 422:
            return JobFailed("bad_parameter", f"Replicate refused the input for {model.model}: {detail}.")
        return JobFailed(
            "remote_error",
            f"Replicate answered with an error (HTTP {exc.status}: {detail}). Submit the job again later.",
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "[token]") if self._token else text


def cloud_options(original: Surface, ticket: Ticket) -> AssetOptions:
    """The job's asset options for a cloud model: one that came textured stays textured when simplified,
    re-baked at the size of its own texture unless the job asks for another."""
    options = ticket.params.assets
    if not original.textured or options.texture:
        return options
    side = max(original.texture.shape[:2])
    return replace(options, texture=next((size for size in TEXTURE_SIZES if size >= side), TEXTURE_SIZES[-1]))


def _metrics(prediction: Prediction | None) -> dict[str, float]:
    """A prediction's metrics, the numbers among them (`predict_time`, `total_time`, ...)."""
    reported = (prediction.metrics if prediction is not None else None) or {}
    return {
        name: value
        for name, value in reported.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def _retry_wait(detail: str | None, attempt: int) -> float:
    """What a 429 asks for ("Expected available in 3 seconds"), else a doubling wait, with some jitter so that
    the predictions of a batch do not all come back at once."""
    asked = _AVAILABLE_IN.search(detail or "")
    wait = float(asked.group(1)) if asked else 2.0 ** (attempt - 1)
    return min(wait, MAX_RETRY_WAIT) * random.uniform(1.0, 1.2)


def _download(url: str, timeout: float) -> Iterator[bytes]:
    with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
        response.raise_for_status()
        yield from response.iter_bytes()


def _read_capped(chunks: Iterator[bytes], source: str) -> bytes:
    data = bytearray()
    for chunk in chunks:
        data += chunk
        if len(data) > MAX_OUTPUT_BYTES:
            raise JobFailed("output_unusable", f"The model file at {source} is larger than 1 GiB.")
    return bytes(data)


def _log_tail(logs: str) -> str:
    lines = [line.rstrip() for line in logs.splitlines() if line.strip()][-LOG_TAIL_LINES:]
    return "\n".join(lines)[-LOG_TAIL_CHARACTERS:]


def _what(value: Any) -> str:
    return "nothing" if value is None else f"a {type(value).__name__}"
