"""A stand-in for Replicate's HTTP API on loopback, for the real `replicate` client (1.0.7) to talk to.

It speaks what the client calls (file upload, prediction create on a version or on an official model, get,
cancel) with Replicate's JSON and its status sequence starting -> processing -> succeeded | failed |
canceled, and serves the outputs. A test sets `fake.behaviour` to say how the next predictions go, and reads
back what the fake saw: uploads, predictions created, cancels, the Authorization headers, the most predictions
in flight at once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sidecar.backends.models import BUILT_IN

TOKEN = "r8_FakeReplicateTokenForTestsThatMustNeverLeak"
MODEL_OF_VERSION = {spec["version"]: spec["model"] for spec in BUILT_IN.values()}
THROTTLED = "Request was throttled. Expected available in 1 second."
NO_CREDIT = (
    "You have insufficient credit to run this model. Go to https://replicate.com/account/billing#billing to "
    "purchase credit. Once you purchase credit, please wait a few minutes before trying to run the model "
    "again."
)
HANG_SECONDS = 30.0


@dataclass
class Behaviour:
    """How the predictions created from now on go."""

    token: str = TOKEN  # the one token it accepts; others get 401
    create_errors: list[int] = field(default_factory=list)  # statuses for the next creates, one each
    starting_polls: int = 1  # polls that see "starting" (Replicate booting the model)
    processing_polls: int = 2  # polls that see "processing", the logs' progress bar growing
    run_seconds: float = 0.0  # and at least this long processing, as a model on a GPU takes
    outcome: str = "succeeded"  # "succeeded", "failed", or "endless" (processing for ever)
    error: str = "CUDA out of memory. Tried to allocate 2.00 GiB"
    output: Any = None  # the output, with "{mesh}" where the mesh file's URL goes
    mesh: bytes = b""
    mesh_name: str = "output.glb"
    serve_over: str = "data"  # "data": data: URIs (the client makes FileOutputs); "http": plain http URLs
    hang: str = ""  # "upload" or "poll": those requests get no answer
    echo_token: bool = False  # repeat the Authorization header in errors and logs, as a careless server might
    predict_time: float = 28.0
    bill_cancelled: bool = False  # whether a cancelled prediction reports metrics (its predict_time)


@dataclass
class Prediction:
    id: str
    model: str
    version: str
    input: dict[str, Any]
    behaviour: Behaviour
    token_seen: str
    status: str = "starting"
    polls: int = 0
    processing_since: float = 0.0  # monotonic
    logs: list[str] = field(default_factory=list)
    created_at: str = field(default_factory=lambda: _now())


class FakeReplicate:
    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self._lock = threading.Lock()
        self._release = threading.Event()  # ends the requests it holds without an answer
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.reset()

    def start(self) -> FakeReplicate:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def reset(self, **behaviour: Any) -> Behaviour:
        """Forget what it saw, and behave as told from now on."""
        with self._lock:
            self.behaviour = Behaviour(**behaviour)
            self.uploads: list[bytes] = []
            self.predictions: dict[str, Prediction] = {}
            self.created: list[dict[str, Any]] = []  # create requests: path and body
            self.cancelled: list[str] = []
            self.authorizations: set[str] = set()  # Authorization headers of API requests
            self.download_authorizations: list[str | None] = []  # ... and of output downloads
            self.in_flight: set[str] = set()
            self.peak_in_flight = 0
            self.held_since: list[float] = []  # when each request it left unanswered came (monotonic)
        return self.behaviour

    # What the handler calls, one request at a time per prediction.

    def upload(self, content: bytes, filename: str) -> dict[str, Any]:
        with self._lock:
            self.uploads.append(content)
            file_id = uuid.uuid4().hex[:12]
        return {
            "id": file_id,
            "name": filename,
            "content_type": "image/png",
            "size": len(content),
            "etag": hashlib.md5(content).hexdigest(),
            "checksums": {
                "sha256": hashlib.sha256(content).hexdigest(),
                "md5": hashlib.md5(content).hexdigest(),
            },
            "metadata": {},
            "created_at": _now(),
            "expires_at": None,
            "urls": {"get": f"{self.url}/v1/files/{file_id}"},
        }

    def create(self, path: str, body: dict[str, Any], token: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.created.append({"path": path, "body": body})
            if self.behaviour.create_errors:
                status = self.behaviour.create_errors.pop(0)
                detail = {429: THROTTLED, 402: NO_CREDIT}.get(status, "Something went wrong")
                return status, _problem(HTTPStatus(status).phrase, detail, status)
            if path == "/v1/predictions":
                version = body["version"]
                model = MODEL_OF_VERSION.get(version, "someone/some-model")
            else:  # /v1/models/{owner}/{name}/predictions: an official model, its latest version
                model, version = path.split("/", 3)[3].rsplit("/", 1)[0], "official"
            prediction = Prediction(
                uuid.uuid4().hex[:20], model, version, body["input"], self.behaviour, token
            )
            self.predictions[prediction.id] = prediction
            self.in_flight.add(prediction.id)
            self.peak_in_flight = max(self.peak_in_flight, len(self.in_flight))
            return 201, self._json(prediction)

    def get(self, prediction_id: str) -> dict[str, Any]:
        with self._lock:
            prediction = self.predictions[prediction_id]
            self._advance(prediction)
            return self._json(prediction)

    def cancel(self, prediction_id: str) -> dict[str, Any]:
        with self._lock:
            prediction = self.predictions[prediction_id]
            self.cancelled.append(prediction_id)
            if prediction.status in ("starting", "processing"):
                prediction.status = "canceled"
            return self._json(prediction)

    def mesh_url(self, behaviour: Behaviour) -> str:
        if behaviour.serve_over == "data":
            return f"data:model/gltf-binary;base64,{base64.b64encode(behaviour.mesh).decode()}"
        return f"{self.url}/delivery/{behaviour.mesh_name}"

    def held(self, endpoint: str) -> bool:
        """Whether requests to `endpoint` go unanswered; if so, hold this one until the end of the test."""
        if self.behaviour.hang != endpoint:
            return False
        self.held_since.append(time.monotonic())
        self._release.wait(HANG_SECONDS)
        return True

    def _advance(self, prediction: Prediction) -> None:
        """One poll's worth of progress: the status sequence Replicate goes through."""
        behaviour = prediction.behaviour
        prediction.polls += 1
        if prediction.status == "starting" and prediction.polls > behaviour.starting_polls:
            prediction.status = "processing"
            prediction.processing_since = time.monotonic()
            prediction.logs.append("Loading the model...")
        if prediction.status != "processing":
            return
        step = prediction.polls - behaviour.starting_polls
        total = behaviour.processing_polls
        running = time.monotonic() - prediction.processing_since < behaviour.run_seconds
        if behaviour.outcome == "endless" or step <= total or running:
            done = min(step, total)
            bar = "█" * done + " " * (total - done)
            prediction.logs.append(
                f"{100 * done // total:3d}%|{bar}| {done}/{total} [00:0{done}<00:01, 1.0it/s]"
            )
        elif behaviour.outcome == "failed":
            prediction.status = "failed"
            prediction.logs += ["Traceback (most recent call last):", f"RuntimeError: {behaviour.error}"]
        else:
            prediction.status = "succeeded"
            prediction.logs.append("Done.")

    def _json(self, prediction: Prediction) -> dict[str, Any]:
        behaviour = prediction.behaviour
        finished = prediction.status in ("succeeded", "failed", "canceled")
        if finished:
            self.in_flight.discard(prediction.id)
        logs = prediction.logs + ([f"token: {prediction.token_seen}"] if behaviour.echo_token else [])
        output = None
        if prediction.status == "succeeded":
            output = _place(behaviour.output, self.mesh_url(behaviour))
        error = behaviour.error if prediction.status == "failed" else None
        if error and behaviour.echo_token:
            error += f" (token {prediction.token_seen})"
        return {
            "id": prediction.id,
            "model": prediction.model,
            "version": prediction.version,
            "input": prediction.input,
            "logs": "\n".join(logs),
            "output": output,
            "error": error,
            "status": prediction.status,
            "source": "api",
            "data_removed": False,
            "created_at": prediction.created_at,
            "started_at": prediction.created_at if prediction.status != "starting" else None,
            "completed_at": _now() if finished else None,
            "metrics": {"predict_time": behaviour.predict_time, "total_time": behaviour.predict_time + 1.5}
            if finished and (prediction.status != "canceled" or behaviour.bill_cancelled)
            else {},
            "urls": {
                "get": f"{self.url}/v1/predictions/{prediction.id}",
                "cancel": f"{self.url}/v1/predictions/{prediction.id}/cancel",
            },
        }


def _handler(fake: FakeReplicate) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet: the tests read what they need
            pass

        def do_GET(self) -> None:
            if self.path.startswith("/delivery/"):
                fake.download_authorizations.append(self.headers.get("Authorization"))
                self._send(200, fake.behaviour.mesh, "model/gltf-binary")
            elif not self.path.startswith("/v1/predictions/"):
                self._json(404, _problem("Not found", f"No route for {self.path}", 404))
            elif self._authorized() and not fake.held("poll"):
                self._json(200, fake.get(self.path.rsplit("/", 1)[1]))

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if not self._authorized():
                return
            if self.path == "/v1/files":
                if not fake.held("upload"):
                    content, filename = _multipart_file(self.headers["Content-Type"], body)
                    self._json(201, fake.upload(content, filename))
            elif self.path.endswith("/cancel"):
                self._json(200, fake.cancel(self.path.split("/")[3]))
            elif self.path == "/v1/predictions" or self.path.endswith("/predictions"):
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                self._json(*fake.create(self.path, json.loads(body), token))
            else:
                self._json(404, _problem("Not found", f"No route for {self.path}", 404))

        def _authorized(self) -> bool:
            header = self.headers.get("Authorization", "")
            fake.authorizations.add(header)
            if header == f"Bearer {fake.behaviour.token}":
                return True
            detail = "You did not pass a valid authentication token"
            if fake.behaviour.echo_token:
                detail += f" ({header})"
            self._json(401, _problem("Unauthenticated", detail, 401))
            return False

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            kind = "application/problem+json" if status >= 400 else "application/json"
            self._send(status, json.dumps(payload).encode(), kind)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _multipart_file(content_type: str, body: bytes) -> tuple[bytes, str]:
    """The `content` part of a multipart/form-data upload: its bytes and file name."""
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "content":
            return part.get_payload(decode=True), part.get_filename()
    raise ValueError("the upload has no content part")


def _place(template: Any, url: str) -> Any:
    if template is None or template == "{mesh}":
        return url
    if isinstance(template, dict):
        return {key: _place(value, url) if value is not None else None for key, value in template.items()}
    if isinstance(template, list):
        return [_place(value, url) for value in template]
    return template


def _problem(title: str, detail: str, status: int) -> dict[str, Any]:
    return {"type": None, "title": title, "detail": detail, "status": status}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
