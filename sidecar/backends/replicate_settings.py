"""The Replicate backend as `serve` sets it up, and whether this sidecar can have one at all.

Importable without the optional `replicate` package (and httpx, which comes with it), so that a sidecar
without them starts, leaves replicate out of `hello` and says why.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field

from ..assets.options import ASSET_STAGES
from .models import ReplicateModel, load_models

TOKEN_VARIABLE = "REPLICATE_API_TOKEN"
BASE_URL_VARIABLE = "REPLICATE_BASE_URL"  # read by the client too; tests point it at a stand-in
TOKENS_PAGE = "https://replicate.com/account/api-tokens"
# The stages of a Replicate job, in order; an `auto` job that moves here has been through local ones first.
STAGES = ("upload", "starting", "predict", "download", "convert", *ASSET_STAGES, "export")
DEFAULT_CONCURRENCY = 4  # predictions in flight at once
DEFAULT_REQUEST_TIMEOUT = 30.0  # seconds Replicate may take to answer one request
DEFAULT_JOB_TIMEOUT = 900.0  # seconds a prediction may take, cold boot included


@dataclass(frozen=True)
class ReplicateSettings:
    """`serve`'s Replicate options: the models, and how many predictions at once, for how long."""

    models: dict[str, ReplicateModel] = field(default_factory=load_models)
    concurrency: int = DEFAULT_CONCURRENCY
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    job_timeout: float = DEFAULT_JOB_TIMEOUT


def environment_token() -> str:
    return os.environ.get(TOKEN_VARIABLE, "").strip()


def refusal(token: str) -> tuple[str, str] | None:
    """Why this sidecar cannot run replicate jobs, as an error code and a sentence; None when it can."""
    if importlib.util.find_spec("replicate") is None:
        return (
            "backend_unavailable",
            "The replicate package is not installed in the sidecar's Python: pip install "
            "'triposr-sidecar[replicate]' there, then restart the sidecar.",
        )
    if not token:
        return (
            "backend_unavailable",
            f"Replicate needs an API token: set {TOKEN_VARIABLE} in the sidecar's environment, or Replicate "
            f"Token in the add-on's preferences, then restart the sidecar. Tokens are at {TOKENS_PAGE}.",
        )
    return None
