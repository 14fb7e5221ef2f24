"""The fields of a client's request that the sidecar checks beyond the protocol's framing."""

from __future__ import annotations

from typing import Any

from shared.protocol import DELIVERY_MODES, Message, ProtocolError

MAX_FILENAME_LENGTH = 255


def job_of(message: Message) -> str:
    if message.job is None:
        raise ProtocolError("bad_header", f'A {message.type} message needs the job id in "job".')
    return message.job


def delivery(header: dict[str, Any]) -> str:
    deliver = header.get("deliver", "bytes")
    if deliver not in DELIVERY_MODES:
        raise ProtocolError(
            "bad_parameter", f'"deliver" must be one of {", ".join(DELIVERY_MODES)}, not {deliver!r}.'
        )
    return deliver


def filename(header: dict[str, Any]) -> str | None:
    name = header.get("filename")
    if name is not None and not (isinstance(name, str) and len(name) <= MAX_FILENAME_LENGTH):
        raise ProtocolError(
            "bad_parameter", f'"filename" must be a string of at most {MAX_FILENAME_LENGTH} characters.'
        )
    return name


def check_same_job(job: str, known: tuple[str, dict], submitted: tuple[str, dict]) -> None:
    """A job id sent again must come with the same image and parameters."""
    if known != submitted:
        what = "image" if known[0] != submitted[0] else "parameters"
        raise ProtocolError(
            "job_conflict", f"Job {job} already exists with another {what}; give a new job a new id."
        )
