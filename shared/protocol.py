"""The sidecar protocol: framing, version, limits and error codes, shared by the sidecar and its clients.

A message is a ZeroMQ multipart message. Frame 0 is the header, a UTF-8 JSON object
`{"v": 1, "type": ..., "job": ..., ...}`; binary payloads follow in the order the header's `frames` list
names them. `docs/protocol.md` describes every message. Standard library only: Blender's Python runs this.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROTOCOL_VERSION = 1
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5571"

# A header larger than this is refused before it is parsed.
MAX_HEADER_BYTES = 64 * 1024
# A request's `request_id`, which the reply echoes, is a string of at most this many characters.
MAX_REQUEST_ID_LENGTH = 64
# The sidecar re-sends progress for every queued or running job this often; it promises at most 2 s.
HEARTBEAT_SECONDS = 1.0
# The stage a job reports while it waits for the worker.
QUEUED = "queued"
TERMINAL_TYPES = frozenset({"result", "error", "cancelled"})
DELIVERY_MODES = ("bytes", "path")
# The backends a client may name that let the sidecar choose where each job runs: local, peers, Replicate.
POLICIES = ("fastest", "cheapest")

# Every error code, and whether sending the same request again may succeed.
ERROR_CODES: dict[str, bool] = {
    # The message itself.
    "bad_header": False,
    "header_too_large": False,
    "unsupported_version": False,
    "unknown_type": False,
    "missing_payload": False,
    "payload_too_large": False,
    "bad_parameter": False,
    # The job as a whole.
    "job_conflict": False,
    "unknown_job": False,
    "result_missing": False,
    "queue_full": True,
    "shutting_down": True,
    "interrupted": True,
    "backend_unavailable": False,
    "storage_full": True,
    # The image.
    "image_empty": False,
    "image_unrecognized": False,
    "image_damaged": False,
    "image_too_large": False,
    "no_foreground": False,
    # The model.
    "weights_unavailable": False,
    "model_unavailable": False,
    "empty_surface": False,
    "out_of_memory": False,
    "unsupported_op": False,
    "internal": False,
    # A cloud backend (Replicate).
    "token_rejected": False,
    "billing_required": False,
    "rate_limited": True,
    "prediction_failed": False,
    "output_unusable": False,
    "remote_timeout": True,
    "remote_error": True,
    "network_down": True,
    # Made by the client, never sent by the sidecar.
    "sidecar_lost": True,
    "sidecar_unavailable": True,
}


class ProtocolError(Exception):
    """A message the receiver cannot accept: `code` (in ERROR_CODES) says why, the text what to do."""

    def __init__(self, code: str, message: str):
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code

    @property
    def retryable(self) -> bool:
        return ERROR_CODES[self.code]


def error_fields(code: str, message: str) -> dict[str, Any]:
    """The header fields of an `error` message."""
    return {"code": code, "message": message, "retryable": ERROR_CODES.get(code, False)}


@dataclass(frozen=True)
class Message:
    header: dict[str, Any]
    payloads: dict[str, Any]  # name -> bytes (or a zmq.Frame where the receiver asked for zero-copy)

    @property
    def type(self) -> str:
        return self.header["type"]

    @property
    def job(self) -> str | None:
        return self.header.get("job")


def weights_folder(weights: str) -> bool:
    """Whether a weights setting (`serve --weights`, the add-on's Weights) names a folder, existing or written
    like a path, rather than a Hugging Face repo id such as `owner/name`."""
    path = Path(weights).expanduser()
    return path.exists() or weights.startswith((".", "/", "~")) or weights.count("/") != 1


def new_job_id() -> str:
    return str(uuid.uuid4())


def is_job_id(value: object) -> bool:
    """A UUID in its canonical lowercase form, so that it is safe as a file name and compares as text."""
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def is_request_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_REQUEST_ID_LENGTH


def encode(
    message_type: str, job: str | None = None, *, payloads: Mapping[str, Any] | None = None, **fields: Any
) -> list[Any]:
    """The frames of one message: the JSON header, then the payloads in the order the header names them."""
    header = {"v": PROTOCOL_VERSION, "type": message_type, "job": job, **fields}
    if payloads:
        header["frames"] = list(payloads)
    text = json.dumps(header, separators=(",", ":"), allow_nan=False)
    return [text.encode("utf-8"), *(payloads or {}).values()]


def decode(frames: Sequence[Any], max_header_bytes: int | None = MAX_HEADER_BYTES) -> Message:
    if not frames:
        raise ProtocolError("bad_header", "The message has no frames.")
    return check_message(parse_header(frames[0], max_header_bytes), frames[1:])


def parse_header(frame: bytes, max_header_bytes: int | None = MAX_HEADER_BYTES) -> dict[str, Any]:
    """Frame 0 as a JSON object, refusing oversized, non-UTF-8 and non-JSON frames."""
    if max_header_bytes is not None and len(frame) > max_header_bytes:
        raise ProtocolError(
            "header_too_large",
            f"The header is {len(frame):,} bytes; the limit is {max_header_bytes:,}. "
            "Send images and models as payload frames, not inside the header.",
        )
    try:
        header = json.loads(bytes(frame).decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError("bad_header", f"Frame 0 must be a UTF-8 JSON object: {exc}.") from exc
    if not isinstance(header, dict):
        raise ProtocolError("bad_header", f"Frame 0 must be a JSON object, not {type(header).__name__}.")
    return header


def check_message(header: dict[str, Any], payload_frames: Sequence[Any]) -> Message:
    """Check the version, type, job and payload frames of a parsed header."""
    if "v" not in header:
        raise ProtocolError("bad_header", 'The header lacks the protocol version "v".')
    version = header["v"]
    if isinstance(version, bool) or not isinstance(version, int):  # true and 1.0 equal 1 in Python
        raise ProtocolError(
            "bad_header", f'"v" must be the integer {PROTOCOL_VERSION}, not {_shown(version)}.'
        )
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            "unsupported_version",
            f"This side speaks protocol version {PROTOCOL_VERSION}, the message version {_shown(version)}. "
            "Update the add-on and the sidecar to the same release.",
        )
    if "request_id" in header and not is_request_id(header["request_id"]):
        raise ProtocolError(
            "bad_header",
            f'"request_id" must be a string of 1 to {MAX_REQUEST_ID_LENGTH} characters, '
            f"not {_shown(header['request_id'])}.",
        )
    if not isinstance(header.get("type"), str):
        raise ProtocolError("bad_header", 'The header lacks a "type" string.')
    job = header.get("job")
    if job is not None and not is_job_id(job):
        raise ProtocolError(
            "bad_header",
            f'"job" must be a UUID in canonical form such as "{new_job_id()}", not {_shown(job)}.',
        )
    names = header.get("frames", [])
    if not (isinstance(names, list) and all(isinstance(name, str) for name in names)):
        raise ProtocolError("bad_header", '"frames" must be a list of payload names.')
    if len(set(names)) != len(names):
        raise ProtocolError("bad_header", f'"frames" names a payload twice: {names}.')
    if len(payload_frames) < len(names):
        raise ProtocolError(
            "missing_payload",
            f"The header names {len(names)} payload frame(s) ({', '.join(names)}) "
            f"but {len(payload_frames)} arrived.",
        )
    if len(payload_frames) > len(names):
        raise ProtocolError(
            "bad_header",
            f'{len(payload_frames)} payload frame(s) arrived but the header\'s "frames" names {len(names)}.',
        )
    return Message(header, dict(zip(names, payload_frames, strict=True)))


def _shown(value: object) -> str:
    """A value from a header as a message quotes it: short, whatever the sender put there."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")
