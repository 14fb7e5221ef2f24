"""The names of the lanes jobs run in ("local", "replicate", "peer <endpoint>"), and the `placement` a job's
result and record carry: which backend, which peer, and why."""

from __future__ import annotations

from typing import Any

PEER_PREFIX = "peer "


def peer_lane(endpoint: str) -> str:
    return f"{PEER_PREFIX}{endpoint}"


def kind(lane: str) -> str:
    """What the lane is, as a result's `backend` says: "local", "replicate" or "peer"."""
    return "peer" if lane.startswith(PEER_PREFIX) else lane


def placement(lane: str, reason: str) -> dict[str, Any]:
    peer = lane.removeprefix(PEER_PREFIX) if kind(lane) == "peer" else None
    return {"backend": kind(lane), "peer": peer, "reason": reason}


def asked_for(backend: str) -> dict[str, Any]:
    """The placement of a job that named its backend."""
    if backend == "auto":
        return placement("local", "auto runs locally first, and moves to Replicate if it cannot run here")
    return placement(backend, f"the job asked for {'Replicate' if backend == 'replicate' else backend}")
