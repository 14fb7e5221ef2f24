"""The sidecar service: one thread owns the ROUTER socket, answers requests and passes on the workers' events.

Every job gets `accepted`, progress at least every HEARTBEAT_SECONDS while it is queued or running, then
exactly one of `result`, `error` or `cancelled`. The lanes of `worker.py` run the jobs (local ones one at a
time, Replicate ones a few at once); the store keeps them. This thread is the only one that touches the socket
and the database, and it never waits on the network. Its work is split by concern: `admission.py` takes jobs
in, `job_events.py` follows them to their end, `delivery.py` keeps what a slow client has not read yet,
`retention.py` keeps the store within its limits, `lifetime.py` says when the processes it serves have gone.
"""

from __future__ import annotations

import errno
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import zmq

from shared.protocol import (
    HEARTBEAT_SECONDS,
    MAX_HEADER_BYTES,
    POLICIES,
    PROTOCOL_VERSION,
    Message,
    ProtocolError,
    check_message,
    decode,
    encode,
    error_fields,
    is_job_id,
    is_request_id,
    parse_header,
    weights_folder,
)

from . import __version__
from .active_jobs import ActiveJobs
from .admission import Admission, Limits
from .backends.base import Backend
from .backends.local import LocalBackend
from .backends.peer import DEFAULT_TIMEOUT as DEFAULT_PEER_TIMEOUT
from .backends.peer import PeerBackend
from .backends.replicate_settings import ReplicateSettings
from .delivery import Delivery
from .dispatch import Dispatch
from .estimator import Estimator
from .heap import release_freed_memory
from .job_events import JobEvents
from .lifetime import Lifetime
from .measurements import Measurements
from .outcomes import Outcomes
from .params import parse_params
from .request_fields import client_pid
from .retention import Retention, StoreLimits
from .routing import Routing
from .security import CurveKeys, check_bind, is_loopback, path_scrubber
from .store import Store
from .worker import Lane

log = logging.getLogger(__name__)

MAX_LIST_LIMIT = 500
MAX_ESTIMATE_COUNT = 10_000  # images in the batch an `estimate` is for
# The socket thread wakes at least this often to send heartbeats and to watch the processes it serves, and
# more often while a client's queue is full, to send what waits for it as soon as it reads.
TICK_SECONDS = 0.25
RETRY_SECONDS = 0.05
# How often what the jobs freed (images, models) is handed back to the system (see heap.py): often enough
# that a batch passing models through the sidecar costs it a few of them at most.
RELEASE_SECONDS = 0.25
# How long a stop waits for the running job to notice its cancellation.
STOP_GRACE_SECONDS = 10.0
# Client messages handled per tick, so that a flood cannot starve the heartbeats.
MESSAGES_PER_TICK = 64
WORKER_EVENTS = "inproc://worker-events"


class StartupError(Exception):
    """The sidecar cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class ServerConfig:
    endpoint: str
    data_dir: Path
    weights: str
    device: str
    precision: str = "float32"
    limits: Limits = field(default_factory=Limits)
    store_limits: StoreLimits = field(default_factory=StoreLimits)
    keys: CurveKeys | None = None
    parent_pid: int | None = None
    max_local_resolution: int | None = None  # larger local jobs fail as out of memory (auto moves them)
    replicate: ReplicateSettings = field(default_factory=ReplicateSettings)
    peers: tuple[str, ...] = ()  # endpoints of other sidecars that run jobs for this one
    peer_key: bytes | None = None  # their CurveZMQ public key
    peer_timeout: float = DEFAULT_PEER_TIMEOUT  # seconds of silence after which a peer's job runs elsewhere


class Server:
    def __init__(self, config: ServerConfig):
        check_bind(config.endpoint, config.keys)
        self.config = config
        self._lifetime = Lifetime(_parent_process(config.parent_pid))
        self._context = zmq.Context()
        try:
            self._socket = self._bind()
            # After the bind: a second sidecar refused for a taken port must not touch the first one's store.
            self._store = Store(config.data_dir)
            self._measurements = Measurements(config.data_dir)
        except BaseException:
            self._context.destroy(linger=0)
            raise
        self._events = self._context.socket(zmq.PULL)
        self._events.bind(WORKER_EVENTS)
        limits = config.limits
        local = LocalBackend(
            config.weights, config.device, config.precision, limits.image_pixels, config.max_local_resolution
        )
        peers = [PeerBackend(endpoint, config.peer_key, config.peer_timeout) for endpoint in config.peers]
        self._routing = Routing(local, config.replicate, limits.image_pixels, self._lane, peers)
        self._estimator = Estimator(self._measurements, local, config.replicate)
        self._dispatch = Dispatch(self._routing, self._estimator, self._store)
        loopback = is_loopback(config.endpoint)
        self._clients_are_local = loopback  # only then does a pid in `hello` name a process here
        self._delivery = Delivery(self._socket, None if loopback else path_scrubber(self._folders()))
        self._retention = Retention(self._store, config.store_limits)
        active = ActiveJobs()
        outcomes = Outcomes(self._store, self._delivery, paths=loopback)
        self._jobs = JobEvents(
            active,
            self._store,
            self._delivery,
            outcomes,
            self._routing,
            self._retention,
            self._estimator,
            self._dispatch,
        )
        admission = Admission(
            limits, active, self._store, self._delivery, outcomes, self._routing, self._jobs, self._dispatch
        )
        self._active = active
        self._handlers = {
            "hello": self._hello,
            "submit": admission.submit,
            "cancel": self._jobs.cancel,
            "fetch": self._jobs.fetch,
            "list": self._list,
            "status": self._status,
            "estimate": self._estimate,
            "shutdown": self._shutdown,
        }
        self._stop_reason: str | None = None
        self._stop_deadline: float | None = None
        self._next_release = 0.0

    @property
    def endpoint(self) -> str:
        return self._socket.last_endpoint.decode()

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop; safe from a signal handler."""
        self._stop_reason = self._stop_reason or reason

    def serve(self) -> int:
        self._retention.start()
        self._routing.start()
        log.info("Listening on %s; loading the model from %s", self.endpoint, self.config.weights)
        if self._routing.replicate_usable:
            log.info("Replicate runs up to %d jobs at once", self.config.replicate.concurrency)
        else:
            log.info("No Replicate backend: %s", self._routing.replicate_refusal[1])
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._events, zmq.POLLIN)
        try:
            while not self._stopped():
                wait = RETRY_SECONDS if self._delivery.retrying else TICK_SECONDS
                ready = dict(poller.poll(wait * 1000))
                if self._events in ready:
                    self._drain_worker()
                if self._socket in ready:
                    self._drain_clients()
                self._jobs.heartbeat()
                self._dispatch.pump()  # lanes open and close (a peer answers again) between events
                self._delivery.flush()
                self._watch()
                self._release_memory()
                if self._stop_reason and self._stop_deadline is None:
                    self._begin_stop()
            self._drain_worker()
            self._jobs.end_all()
            self._delivery.flush()
        finally:
            self._close()
        log.info("Stopped")
        return 0

    # The socket and the loop.

    def _lane(self, name: str, backend: Backend, threads: int) -> Lane:
        return Lane(name, backend, threads, self._context, WORKER_EVENTS, self._store.results_dir)

    def _folders(self) -> dict[Path, str]:
        """What a sidecar that other machines reach shows for its own folders in messages."""
        folders = {
            self.config.data_dir: "[data folder]",
            Path(tempfile.gettempdir()): "[temporary folder]",
            Path(sys.prefix): "[python]",
            Path(sys.base_prefix): "[python]",
            Path.home(): "~",
        }
        if weights_folder(self.config.weights):
            folders[Path(self.config.weights)] = f"[weights folder {Path(self.config.weights).name}]"
        return folders

    def _bind(self) -> zmq.Socket:
        socket = self._context.socket(zmq.ROUTER)
        socket.linger = 1000  # lets the last terminal messages leave when we stop
        socket.router_handover = True  # a client reconnecting with its routing id takes over its jobs
        # The transport drops frames far beyond the image cap; those a little over it get an error reply.
        socket.maxmsgsize = 2 * self.config.limits.image_bytes + MAX_HEADER_BYTES
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
        return not self._routing.any_alive() or time.monotonic() > self._stop_deadline

    def _begin_stop(self) -> None:
        log.info("Stopping: %s", self._stop_reason)
        self._stop_deadline = time.monotonic() + STOP_GRACE_SECONDS
        self._jobs.stop()
        self._routing.stop()

    def _close(self) -> None:
        self._socket.close()
        self._events.close(linger=0)
        self._store.close()
        self._measurements.close()
        if not self._routing.any_alive():  # else their sockets keep term() waiting; the process ends anyway
            self._context.term()

    def _watch(self) -> None:
        """Stop when a worker thread has died (its jobs could not end) or every process it serves has gone."""
        if not self._routing.all_alive() and self._stop_deadline is None:
            self.request_stop("a worker thread has died")
        if reason := self._lifetime.ended():
            self.request_stop(reason)

    def _release_memory(self) -> None:
        if time.monotonic() >= self._next_release:
            self._next_release = time.monotonic() + RELEASE_SECONDS
            release_freed_memory()

    def _reply(self, peer: bytes, request: dict[str, Any], message_type: str, **fields: Any) -> None:
        """Answer a request, echoing its request_id so that the client can match the answer to it."""
        job = request.get("job") if is_job_id(request.get("job")) else None
        if is_request_id(request.get("request_id")):
            fields["request_id"] = request["request_id"]
        self._delivery.reply(peer, encode(message_type, job, **fields))

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
            self._reply(peer, header, "error", **error_fields(exc.code, str(exc)))
        except Exception:
            log.exception("A %.40r message could not be handled", header.get("type"))
            message = "The sidecar failed to handle the message; its log has the details."
            self._reply(peer, header, "error", **error_fields("internal", message))

    def _drain_worker(self) -> None:
        while True:
            try:
                frames = self._events.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            message = decode(frames, max_header_bytes=None)
            try:
                self._jobs.on_worker_event(message)
            except Exception:  # the store failing (a full disk), say: the service goes on
                log.exception("The %s event of job %s could not be handled", message.type, message.job)

    # Requests about the sidecar.

    def _hello(self, peer: bytes, message: Message) -> None:
        pid = client_pid(message.header)
        if pid is not None and self._clients_are_local:
            self._lifetime.stay_up_for(pid)
        self._reply(
            peer,
            message.header,
            "hello",
            protocol=PROTOCOL_VERSION,
            version=__version__,
            backends=self._routing.backends,
            peers=self._routing.peer_fields(),
            policies=list(POLICIES),
            **self._model_fields(),
            queue_length=self._active.queue_length(),
            running=self._active.running(),
            stages=self._routing.stages,
            replicate=self._routing.replicate_fields(),
            heartbeat_seconds=HEARTBEAT_SECONDS,
            limits=self.config.limits.describe(),
        )

    def _status(self, peer: bytes, message: Message) -> None:
        jobs = [{"job": job.id, **job.progress_fields(self._active.position(job))} for job in self._active]
        queue_length = self._active.queue_length()
        self._reply(
            peer, message.header, "status", jobs=jobs, queue_length=queue_length, **self._model_fields()
        )

    def _list(self, peer: bytes, message: Message) -> None:
        limit = message.header.get("limit", 50)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise ProtocolError(
                "bad_parameter", f'"limit" must be a whole number from 1 to {MAX_LIST_LIMIT}.'
            )
        jobs = [{"job": record.id, **record.describe()} for record in self._store.recent(limit)]
        self._reply(peer, message.header, "list", jobs=jobs, total_cost=self._store.total_cost())

    def _estimate(self, peer: bytes, message: Message) -> None:
        count = message.header.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_ESTIMATE_COUNT:
            raise ProtocolError(
                "bad_parameter", f'"count" must be a whole number from 1 to {MAX_ESTIMATE_COUNT}.'
            )
        # a job Replicate would refuse still has an estimate there: the reply says Replicate is unusable
        params = parse_params(message.header.get("params"), tuple(self._routing.replicate_models), None)
        fields = self._estimator.describe(params, count, self._routing.replicate_usable)
        fields["policy"] = self._dispatch.forecast(params, count)
        self._reply(peer, message.header, "estimate", **fields)

    def _shutdown(self, peer: bytes, message: Message) -> None:
        self._reply(peer, message.header, "shutdown")
        self.request_stop("a client asked it to")

    def _model_fields(self) -> dict[str, Any]:
        model = self._routing.local.model_state
        return {
            "device": model.device,
            "weights": model.state,
            "weights_source": self.config.weights,
            "precision": self._routing.local.precision,
            "weights_error_code": model.error_code,
            "weights_error": model.error,
        }


def _parent_process(pid: int | None) -> psutil.Process | None:
    if pid is None:
        return None
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess as exc:
        raise StartupError(f"There is no process {pid} to watch (--parent-pid).") from exc
