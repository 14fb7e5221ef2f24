"""The sidecar service: one thread owns the ROUTER socket, answers requests and passes on the workers' events.

Every job gets `accepted`, progress at least every HEARTBEAT_SECONDS while it is queued or running, then
exactly one of `result`, `error` or `cancelled`. The lanes of `worker.py` run the jobs (local ones one at a
time, Replicate ones a few at once); the store keeps them; this thread is the only one that touches the
socket and the database, and it never waits on the network: it only routes tickets and events, including
an `auto` job that failed locally on to Replicate.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import zmq

from shared.protocol import (
    DELIVERY_MODES,
    HEARTBEAT_SECONDS,
    MAX_HEADER_BYTES,
    PROTOCOL_VERSION,
    Message,
    ProtocolError,
    check_message,
    decode,
    encode,
    error_fields,
    is_job_id,
    parse_header,
)

from . import __version__
from .backends import replicate_settings
from .backends.auto import failover, moves_to_replicate
from .backends.base import Backend
from .backends.local import LocalBackend
from .backends.replicate_settings import ReplicateSettings
from .jobs import ActiveJob, Ticket
from .memory import format_bytes
from .params import JobParams, parse_params
from .pipeline import STAGES
from .processes import is_alive
from .security import CurveKeys, check_bind
from .store import JobRecord, Store
from .triposr.preprocess import DEFAULT_MAX_PIXELS
from .worker import Lane

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 32
DEFAULT_MAX_IMAGE_BYTES = 50 * 1024**2
MAX_LIST_LIMIT = 500
MAX_FILENAME_LENGTH = 255
# The socket thread wakes at least this often to send heartbeats and to watch for its parent.
TICK_SECONDS = 0.25
PARENT_CHECK_SECONDS = 1.0
# How long a stop waits for the running job to notice its cancellation.
STOP_GRACE_SECONDS = 10.0
# Client messages handled per tick, so that a flood cannot starve the heartbeats.
MESSAGES_PER_TICK = 64
WORKER_EVENTS = "inproc://worker-events"
# The result columns a lane's `result` event fills.
RESULT_FIELDS = (
    "backend",
    "model",
    "device",
    "vertices",
    "faces",
    "stage_seconds",
    "peak_rss_bytes",
    "peak_device_bytes",
    "glb_bytes",
    "cost",
    "metrics",
    "prediction",
)
# What an `error` event may add for the store: the cost of a prediction that failed, say.
FAILURE_FIELDS = ("cost", "metrics", "prediction")


class StartupError(Exception):
    """The sidecar cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class Limits:
    queue_size: int = DEFAULT_QUEUE_SIZE
    image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    image_pixels: int = DEFAULT_MAX_PIXELS

    def describe(self) -> dict[str, int]:
        return {
            "header_bytes": MAX_HEADER_BYTES,
            "image_bytes": self.image_bytes,
            "image_pixels": self.image_pixels,
            "queue_size": self.queue_size,
        }


@dataclass(frozen=True)
class ServerConfig:
    endpoint: str
    data_dir: Path
    weights: str
    device: str
    precision: str = "float32"
    limits: Limits = field(default_factory=Limits)
    keys: CurveKeys | None = None
    parent_pid: int | None = None
    max_local_resolution: int | None = None  # larger local jobs fail as out of memory (auto moves them)
    replicate: ReplicateSettings = field(default_factory=ReplicateSettings)


class Server:
    def __init__(self, config: ServerConfig):
        check_bind(config.endpoint, config.keys)
        self.config = config
        self.limits = config.limits
        self._parent = _parent_process(config.parent_pid)
        self._context = zmq.Context()
        try:
            self._socket = self._bind()
            # After the bind: a second sidecar refused for a taken port must not touch the first one's store.
            self._store = Store(config.data_dir)
        except BaseException:
            self._context.destroy(linger=0)
            raise
        self._events = self._context.socket(zmq.PULL)
        self._events.bind(WORKER_EVENTS)
        self._local = LocalBackend(
            config.weights,
            config.device,
            config.precision,
            self.limits.image_pixels,
            config.max_local_resolution,
        )
        self._lanes = {"local": self._lane(self._local, 1)}
        self._replicate_models = config.replicate.models
        token = replicate_settings.environment_token()
        self._replicate_refusal = replicate_settings.refusal(token)
        if self._replicate_refusal is None:
            from .backends.replicate import ReplicateBackend  # needs the optional `replicate` package

            backend = ReplicateBackend(config.replicate, token, self.limits.image_pixels)
            self._lanes["replicate"] = self._lane(backend, config.replicate.concurrency)
        self._jobs: dict[str, ActiveJob] = {}  # queued and running, in the order they were accepted
        self._handlers = {
            "hello": self._hello,
            "submit": self._submit,
            "cancel": self._cancel,
            "fetch": self._fetch,
            "list": self._list,
            "status": self._status,
            "shutdown": self._shutdown,
        }
        self._stop_reason: str | None = None
        self._stop_deadline: float | None = None
        self._next_parent_check = 0.0

    @property
    def endpoint(self) -> str:
        return self._socket.last_endpoint.decode()

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop; safe from a signal handler."""
        self._stop_reason = self._stop_reason or reason

    def serve(self) -> int:
        for lane in self._lanes.values():
            lane.start()
        log.info("Listening on %s; loading the model from %s", self.endpoint, self.config.weights)
        if self._replicate_refusal is None:
            log.info("Replicate runs up to %d jobs at once", self.config.replicate.concurrency)
        else:
            log.info("No Replicate backend: %s", self._replicate_refusal[1])
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._events, zmq.POLLIN)
        try:
            while not self._stopped():
                ready = dict(poller.poll(TICK_SECONDS * 1000))
                if self._events in ready:
                    self._drain_worker()
                if self._socket in ready:
                    self._drain_clients()
                self._send_heartbeats()
                self._watch()
                if self._stop_reason and self._stop_deadline is None:
                    self._begin_stop()
            self._drain_worker()
            for active in list(self._jobs.values()):  # it outlived the grace period, and still gets its end
                self._fail(active, "shutting_down", _SHUTTING_DOWN)
        finally:
            self._close()
        log.info("Stopped")
        return 0

    # The socket and the loop.

    def _lane(self, backend: Backend, threads: int) -> Lane:
        return Lane(backend, threads, self._context, WORKER_EVENTS, self._store.results_dir)

    def _bind(self) -> zmq.Socket:
        socket = self._context.socket(zmq.ROUTER)
        socket.linger = 1000  # lets the last terminal messages leave when we stop
        socket.router_handover = True  # a client reconnecting with its routing id takes over its jobs
        # The transport drops frames far beyond the image cap; those a little over it get an error reply.
        socket.maxmsgsize = 2 * self.limits.image_bytes + MAX_HEADER_BYTES
        if self.config.keys is not None:
            socket.curve_server = True
            socket.curve_publickey = self.config.keys.public
            socket.curve_secretkey = self.config.keys.secret
        try:
            socket.bind(self.config.endpoint)
        except zmq.ZMQError as exc:
            socket.close(linger=0)
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"Another program is already listening on {self.config.endpoint}, probably another "
                    "sidecar. Stop it, or choose a free port with --bind tcp://127.0.0.1:PORT."
                ) from exc
            raise StartupError(f"Cannot listen on {self.config.endpoint}: {exc.strerror}.") from exc
        return socket

    def _stopped(self) -> bool:
        if self._stop_deadline is None:
            return False
        return not self._any_worker_alive() or time.monotonic() > self._stop_deadline

    def _begin_stop(self) -> None:
        log.info("Stopping: %s", self._stop_reason)
        self._stop_deadline = time.monotonic() + STOP_GRACE_SECONDS
        for active in list(self._jobs.values()):
            if active.ticket.cancel():  # queued: ends now; the running job ends at its next progress report
                self._fail(active, "shutting_down", _SHUTTING_DOWN)
        for lane in self._lanes.values():
            lane.stop()

    def _close(self) -> None:
        self._socket.close()
        self._events.close(linger=0)
        self._store.close()
        if not self._any_worker_alive():  # else their sockets keep term() waiting; the process ends anyway
            self._context.term()

    def _any_worker_alive(self) -> bool:
        return any(lane.any_alive() for lane in self._lanes.values())

    def _watch(self) -> None:
        """Stop when a worker thread has died (its jobs could not end) or the parent process has gone."""
        if not all(lane.all_alive() for lane in self._lanes.values()) and self._stop_deadline is None:
            self.request_stop("a worker thread has died")
        if self._parent is None or time.monotonic() < self._next_parent_check:
            return
        self._next_parent_check = time.monotonic() + PARENT_CHECK_SECONDS
        if not is_alive(self._parent):
            self.request_stop(f"the parent process {self._parent.pid} has exited")

    def _send(self, peer: bytes, frames: list) -> None:
        self._socket.send_multipart([peer, *frames], copy=False)

    def _reply(
        self, peer: bytes, request: dict[str, Any], message_type: str, job: str | None = None, **fields: Any
    ) -> None:
        """Answer a request, echoing its request_id so that the client can match the answer to it."""
        request_id = request.get("request_id")
        if isinstance(request_id, str) and len(request_id) <= 64:
            fields["request_id"] = request_id
        self._send(peer, encode(message_type, job, **fields))

    def _reply_error(self, peer: bytes, request: dict[str, Any], error: ProtocolError) -> None:
        job = request.get("job") if is_job_id(request.get("job")) else None
        self._reply(peer, request, "error", job, **error_fields(error.code, str(error)))

    def _drain_clients(self) -> None:
        for _ in range(MESSAGES_PER_TICK):
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._handle(frames[0], frames[1:])

    def _handle(self, peer: bytes, frames: list[bytes]) -> None:
        header: dict[str, Any] = {}
        try:
            header = parse_header(frames[0])
            message = check_message(header, frames[1:])
            handler = self._handlers.get(message.type)
            if handler is None:
                raise ProtocolError(
                    "unknown_type",
                    f"Unknown message type {message.type[:40]!r}; this sidecar understands "
                    f"{', '.join(self._handlers)}.",
                )
            handler(peer, message)
        except ProtocolError as exc:
            log.info("Refused a %.40r message (%s): %s", header.get("type", "malformed"), exc.code, exc)
            self._reply_error(peer, header, exc)
        except Exception:
            log.exception("A %.40r message could not be handled", header.get("type"))
            failure = ProtocolError(
                "internal", "The sidecar failed to handle the message; its log has the details."
            )
            self._reply_error(peer, header, failure)

    # Requests.

    def _hello(self, peer: bytes, message: Message) -> None:
        running = next((active.id for active in self._jobs.values() if not active.queued), None)
        self._reply(
            peer,
            message.header,
            "hello",
            protocol=PROTOCOL_VERSION,
            version=__version__,
            backends=list(self._lanes),
            **self._model_fields(),
            queue_length=self._queue_length(),
            running=running,
            stages=list(
                dict.fromkeys([*STAGES, *(replicate_settings.STAGES if "replicate" in self._lanes else ())])
            ),
            replicate=self._replicate_fields(),
            heartbeat_seconds=HEARTBEAT_SECONDS,
            limits=self.limits.describe(),
        )

    def _status(self, peer: bytes, message: Message) -> None:
        jobs = [
            {"job": active.id, **active.progress_fields(self._position(active))}
            for active in self._jobs.values()
        ]
        self._reply(
            peer,
            message.header,
            "status",
            jobs=jobs,
            queue_length=self._queue_length(),
            **self._model_fields(),
        )

    def _list(self, peer: bytes, message: Message) -> None:
        limit = message.header.get("limit", 50)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise ProtocolError(
                "bad_parameter", f'"limit" must be a whole number from 1 to {MAX_LIST_LIMIT}.'
            )
        jobs = [{"job": record.id, **record.describe()} for record in self._store.recent(limit)]
        self._reply(peer, message.header, "list", jobs=jobs, total_cost=self._store.total_cost())

    def _shutdown(self, peer: bytes, message: Message) -> None:
        self._reply(peer, message.header, "shutdown")
        self.request_stop("a client asked it to")

    def _submit(self, peer: bytes, message: Message) -> None:
        job = _job_of(message)
        if self._stop_reason:
            raise ProtocolError("shutting_down", _SHUTTING_DOWN)
        image = message.payloads.get("image")
        if image is None:
            raise ProtocolError(
                "missing_payload", 'A submit carries the image in a payload frame named "image".'
            )
        if len(image) > self.limits.image_bytes:
            raise ProtocolError(
                "payload_too_large",
                f"The image file is {format_bytes(len(image))}; this sidecar takes images up to "
                f"{format_bytes(self.limits.image_bytes)}. Scale it down or save it as JPEG.",
            )
        params = parse_params(
            message.header.get("params"), tuple(self._replicate_models), self._replicate_refusal
        )
        deliver = _delivery(message.header)
        filename = _filename(message.header)
        digest = hashlib.sha256(image).hexdigest()
        fingerprint = (digest, params.to_wire())

        if (active := self._jobs.get(job)) is not None:  # a resubmission: answer with the job's state
            _check_same_job(job, active.fingerprint, fingerprint)
            active.subscribers[peer] = deliver
            self._send(peer, encode("accepted", job, params=fingerprint[1], filename=filename))
            self._send_progress(active, [peer])
            return
        record = self._store.get(job)
        if record is not None:
            _check_same_job(job, (record.image_sha256, record.params), fingerprint)
            if not (record.status == "failed" and record.retryable):
                self._send(peer, encode("accepted", job, params=record.params, filename=record.filename))
                self._send_outcome(peer, record, deliver)
                return
        cache_keys = self._cache_keys(params, digest)
        cached = next(filter(None, map(self._store.cached_result, cache_keys)), None)
        if cached is not None:
            log.info("Job %s is answered with the result of job %s", job, cached.id)
            record = self._store.reuse(cached, job, filename, params.to_wire())
            self._send(peer, encode("accepted", job, params=record.params, filename=filename))
            self._send_outcome(peer, record, deliver)
            return
        if self._queue_length() >= self.limits.queue_size:
            raise ProtocolError(
                "queue_full",
                f"{self.limits.queue_size} jobs are already waiting; submit this one when some are done.",
            )
        self._store.add(
            JobRecord(
                id=job,
                status="queued",
                image_sha256=digest,
                filename=filename,
                params=params.to_wire(),
                cache_key=cache_keys[0],
                model=self._identity(params, params.runs_on),
                backend=params.runs_on,
                created_at=time.time(),
            )
        )
        active = ActiveJob(Ticket(job, image, params, filename), fingerprint, {peer: deliver})
        self._jobs[job] = active
        self._lanes[params.runs_on].put(active.ticket)
        log.info("Job %s accepted (%s, %s bytes)", job, filename or "unnamed image", f"{len(image):,}")
        self._send(peer, encode("accepted", job, params=params.to_wire(), filename=filename))
        self._send_progress(active, [peer])

    def _cancel(self, peer: bytes, message: Message) -> None:
        job = _job_of(message)
        active = self._jobs.get(job)
        if active is None:
            if self._store.get(job) is None:
                raise ProtocolError("unknown_job", f"There is no job {job} to cancel.")
            return  # it has finished, and its terminal message has gone out
        if active.ticket.cancel():  # it had not started
            self._store.cancel(job)
            self._finish(active, encode("cancelled", job))
        # Otherwise the worker stops it at its next progress report and says "cancelled".

    def _fetch(self, peer: bytes, message: Message) -> None:
        job = _job_of(message)
        deliver = _delivery(message.header)
        if (active := self._jobs.get(job)) is not None:
            active.subscribers[peer] = deliver
            self._send_progress(active, [peer])
        elif (record := self._store.get(job)) is not None:
            self._send_outcome(peer, record, deliver)
        else:
            raise ProtocolError(
                "unknown_job", f"This sidecar has no job {job}; its store may have been emptied."
            )

    # The worker's events.

    def _drain_worker(self) -> None:
        while True:
            try:
                frames = self._events.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            message = decode([frames[0].bytes, *frames[1:]], max_header_bytes=None)
            active = self._jobs.get(message.job)
            if active is not None:
                self._on_worker_event(active, message)

    def _on_worker_event(self, active: ActiveJob, message: Message) -> None:
        header = message.header
        if message.type == "progress":
            if active.queued:
                self._store.mark_running(active.id)
            active.stage, active.fraction = header["stage"], header["fraction"]
            self._send_progress(active, active.subscribers)
        elif message.type == "result":
            record = self._store.finish(active.id, **{name: header[name] for name in RESULT_FIELDS})
            del self._jobs[active.id]
            cost = f", ${header['cost']:.4f}" if header["cost"] is not None else ""
            log.info(
                "Job %s done on %s in %.1f s%s",
                active.id,
                header["backend"],
                sum(header["stage_seconds"].values()),
                cost,
            )
            for peer, deliver in active.subscribers.items():
                self._send_result(peer, record, deliver, message.payloads["glb"], from_store=False)
        elif message.type == "cancelled" and self._stop_reason:
            self._fail(active, "shutting_down", _SHUTTING_DOWN)
        elif message.type == "cancelled":
            log.info("Job %s cancelled", active.id)
            self._store.cancel(active.id)
            self._finish(active, encode("cancelled", active.id))
        elif self._moves_to_replicate(active, header["code"]):
            self._move_to_replicate(active, header["code"], header["message"])
        else:
            code, text = header["code"], header["message"]
            if active.failover is not None:
                text = f"{text} (It went to Replicate because {active.failover['reason']}.)"
            log.info("Job %s failed (%s): %s", active.id, code, text)
            self._fail(active, code, text, **{name: header.get(name) for name in FAILURE_FIELDS})

    def _moves_to_replicate(self, active: ActiveJob, code: str) -> bool:
        ready = "replicate" in self._lanes and self._stop_reason is None and not active.ticket.cancelled
        return active.failover is None and moves_to_replicate(active.ticket.params, code, ready)

    def _move_to_replicate(self, active: ActiveJob, code: str, message: str) -> None:
        """An `auto` job failed locally for a reason Replicate does not share: the same job goes there,
        with a ticket of its own (one that a cancel stops before it starts)."""
        log.info("Job %s moves to Replicate: %s", active.id, message)
        active.failover = failover(code, message)
        params = active.ticket.params
        self._store.update(
            active.id,
            backend="replicate",
            model=self._identity(params, "replicate"),
            cache_key=self._cache_keys(params, active.fingerprint[0])[-1],  # its result is a Replicate one
            failover=active.failover,
        )
        active.ticket = Ticket(active.id, active.ticket.image, params, active.ticket.filename)
        self._lanes["replicate"].put(active.ticket)

    # Sending a job's events.

    def _send_heartbeats(self) -> None:
        now = time.monotonic()
        for active in self._jobs.values():
            if now - active.last_sent >= HEARTBEAT_SECONDS:
                self._send_progress(active, active.subscribers)

    def _send_progress(self, active: ActiveJob, peers) -> None:
        frames = encode("progress", active.id, **active.progress_fields(self._position(active)))
        for peer in peers:
            self._send(peer, frames)
        active.last_sent = time.monotonic()

    def _send_result(self, peer: bytes, record: JobRecord, deliver: str, glb: Any, from_store: bool) -> None:
        fields = {**record.describe(), "from_store": from_store}
        if deliver == "path":
            self._send(
                peer,
                encode("result", record.id, path=str(self._store.result_path(record).resolve()), **fields),
            )
        else:
            self._send(peer, encode("result", record.id, payloads={"glb": glb}, **fields))

    def _send_outcome(self, peer: bytes, record: JobRecord, deliver: str) -> None:
        """A finished job's terminal message, from the store."""
        if record.status == "cancelled":
            self._send(peer, encode("cancelled", record.id))
        elif record.status == "failed":
            self._send(
                peer, encode("error", record.id, **error_fields(record.error_code, record.error_message))
            )
        elif not self._store.result_path(record).is_file():
            raise ProtocolError(
                "result_missing", f"The model of job {record.id} was deleted from {self._store.results_dir}."
            )
        else:
            glb = None if deliver == "path" else self._store.result_path(record).read_bytes()
            self._send_result(peer, record, deliver, glb, from_store=True)

    def _fail(self, active: ActiveJob, code: str, message: str, **record: Any) -> None:
        self._store.fail(active.id, code, message, **record)
        self._finish(active, encode("error", active.id, **error_fields(code, message)))

    def _finish(self, active: ActiveJob, frames: list) -> None:
        del self._jobs[active.id]
        for peer in active.subscribers:
            self._send(peer, frames)

    # Small facts.

    def _cache_keys(self, params: JobParams, image_sha256: str) -> list[str]:
        """The keys of the stored results that may answer a job, its own first: an `auto` job takes a
        Replicate result too, as it would end up there."""
        local = params.cache_key(image_sha256, self._local.identity)
        remote = self._replicate_models[params.replicate_model].cache_key(
            image_sha256, params.generation, params.assets
        )
        return {"local": [local], "replicate": [remote], "auto": [local, remote]}[params.backend]

    def _identity(self, params: JobParams, backend: str) -> str:
        if backend == "local":
            return self._local.identity
        return self._replicate_models[params.replicate_model].identity

    def _replicate_fields(self) -> dict[str, Any]:
        code, problem = self._replicate_refusal or (None, None)
        return {
            "available": self._replicate_refusal is None,
            "problem_code": code,
            "problem": problem,
            "models": list(self._replicate_models),
            "concurrency": self.config.replicate.concurrency,
        }

    def _model_fields(self) -> dict[str, Any]:
        model = self._local.model_state
        return {
            "device": model.device,
            "weights": model.state,
            "weights_source": self.config.weights,
            "precision": self.config.precision,
            "weights_error_code": model.error_code,
            "weights_error": model.error,
        }

    def _queue_length(self) -> int:
        return sum(active.queued for active in self._jobs.values())

    def _position(self, active: ActiveJob) -> int | None:
        """1 for the job that runs next on its backend; None for a job that runs."""
        if not active.queued:
            return None
        lane = active.ticket.params.runs_on
        queued = [job for job in self._jobs.values() if job.queued and job.ticket.params.runs_on == lane]
        return queued.index(active) + 1


_SHUTTING_DOWN = "The sidecar is shutting down; submit the job again once it runs."


def _job_of(message: Message) -> str:
    if message.job is None:
        raise ProtocolError("bad_header", f'A {message.type} message needs the job id in "job".')
    return message.job


def _delivery(header: dict[str, Any]) -> str:
    deliver = header.get("deliver", "bytes")
    if deliver not in DELIVERY_MODES:
        raise ProtocolError(
            "bad_parameter", f'"deliver" must be one of {", ".join(DELIVERY_MODES)}, not {deliver!r}.'
        )
    return deliver


def _filename(header: dict[str, Any]) -> str | None:
    filename = header.get("filename")
    if filename is not None and not (isinstance(filename, str) and len(filename) <= MAX_FILENAME_LENGTH):
        raise ProtocolError(
            "bad_parameter", f'"filename" must be a string of at most {MAX_FILENAME_LENGTH} characters.'
        )
    return filename


def _check_same_job(job: str, known: tuple[str, dict], submitted: tuple[str, dict]) -> None:
    if known != submitted:
        what = "image" if known[0] != submitted[0] else "parameters"
        raise ProtocolError(
            "job_conflict", f"Job {job} already exists with another {what}; give a new job a new id."
        )


def _parent_process(pid: int | None) -> psutil.Process | None:
    if pid is None:
        return None
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess as exc:
        raise StartupError(f"There is no process {pid} to watch (--parent-pid).") from exc
