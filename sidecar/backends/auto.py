"""`auto`: a job runs locally, and moves to Replicate when the local run fails in a way that Replicate's
hardware and weights do not share, provided this sidecar can run replicate jobs at all."""

from __future__ import annotations

from typing import Any

from ..params import JobParams

# The local failures Replicate does not share, and how the job's record says why it moved.
CLOUD_FIXES = {
    "out_of_memory": "it ran out of memory locally",
    "unsupported_op": "the local device lacks an operation the model needs",
    "weights_unavailable": "the local model's weights are missing",
    "model_unavailable": "the local model cannot be loaded",
}


def moves_to_replicate(params: JobParams, code: str, replicate_ready: bool) -> bool:
    return params.backend == "auto" and replicate_ready and code in CLOUD_FIXES


def failover(code: str, message: str) -> dict[str, Any]:
    """What a result (or an error) records about a job that moved: from where, and why."""
    return {"from": "local", "to": "replicate", "code": code, "reason": CLOUD_FIXES[code], "message": message}


def why_it_stayed(params: JobParams, code: str, replicate_refusal: tuple[str, str] | None) -> str:
    """What the local error of an `auto` job adds when Replicate would have run it but cannot here (no token,
    say), so that the person reading it knows what stands in the way; empty otherwise."""
    if params.backend != "auto" or code not in CLOUD_FIXES or replicate_refusal is None:
        return ""
    return (
        f" (auto would have moved the job to Replicate, which cannot run jobs here: {replicate_refusal[1]})"
    )
