"""The fields of a client's request that the sidecar checks beyond the protocol's framing."""

from __future__ import annotations

from typing import Any

from shared.protocol import DELIVERY_MODES, Message, ProtocolError

MAX_FILENAME_LENGTH = 255
# pid_t is a signed 32-bit number (Windows' process ids stay far below it): a larger one names no process,
# and would overflow the calls that look for one.
MAX_PID = 2**31 - 1


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


def client_pid(header: dict[str, Any]) -> int | None:
    """The process a `hello` says its client speaks for (a Blender), if it names one."""
    pid = header.get("client_pid")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid <= MAX_PID):
        raise ProtocolError(
            "bad_parameter", f'"client_pid" must be a process id, a whole number from 1 to {MAX_PID}.'
        )
    return pid


def check_same_job(job: str, known: tuple[str, dict], submitted: tuple[str, dict]) -> None:
    """A job id sent again must come with the same image and parameters."""
    if known != submitted:
        what = "image" if known[0] != submitted[0] else "parameters"
        raise ProtocolError(
            "job_conflict", f"Job {job} already exists with another {what}; give a new job a new id."
        )
