"""A job's parameters as a client sends them: checked, completed with defaults, and tied to a backend."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from shared.protocol import POLICIES, ProtocolError

from .assets.options import MIN_FACES, TEXTURE_SIZES, AssetOptions
from .pipeline import GenerationParams

# What a client may name; "auto" runs locally and moves to Replicate when the local run cannot work; the
# policies let the sidecar choose among local, its peers and Replicate (scheduler.py).
BACKENDS = ("local", "auto", "replicate", *POLICIES)
MAX_BATCH_LENGTH = 64
MAX_DEADLINE_SECONDS = 7 * 86400.0
# The Replicate model a job runs on unless it names another (sidecar/backends/models.py configures it).
DEFAULT_REPLICATE_MODEL = "tripo-sr"
# Why a replicate job is refused where the sidecar has no Replicate backend: a code and a sentence.
NO_REPLICATE = ("backend_unavailable", "This sidecar cannot run jobs on Replicate; use local.")
# Bounds of the numeric parameters.
INTEGER_RANGES = {
    "resolution": (8, 1024),
    "chunk_size": (0, 1 << 22),
    "coarse_resolution": (2, 1024),
    "smooth": (0, 100),
    "faces": (0, 10_000_000),
    "texture": (0, max(TEXTURE_SIZES)),
}
MIN_CHUNK_SIZE = 1024
NUMBER_RANGES = {"min_piece": (0.0, 1.0), "height": (0.0, 1000.0)}
# Parameters that change how a job runs but not the model it makes.
RUN_ONLY_PARAMS = ("chunk_size",)

GENERATION_FIELDS = fields(GenerationParams)
ASSET_FIELDS = fields(AssetOptions)
# Where a policy job may run, and what it may spend: they decide the placement, not the model.
POLICY_PARAMS = ("budget", "deadline", "batch")
PARAM_NAMES = (
    "backend",
    "replicate_model",
    *POLICY_PARAMS,
    *(field.name for field in (*GENERATION_FIELDS, *ASSET_FIELDS)),
)


@dataclass(frozen=True)
class JobParams:
    backend: str  # as the client asked: "local", "auto", "replicate", or a policy ("fastest", "cheapest")
    generation: GenerationParams
    assets: AssetOptions  # what becomes of the surface, whichever backend makes it
    replicate_model: str = DEFAULT_REPLICATE_MODEL  # where a replicate job (or an auto one moved there) runs
    budget: float | None = None  # dollars a policy job's batch may spend on Replicate; None: no limit
    deadline: float | None = None  # seconds from submission within which a cheapest job should finish
    batch: str | None = None  # jobs with the same batch share one budget

    @property
    def policy(self) -> bool:
        """Whether the sidecar chooses where the job runs (dispatch.py) rather than the client."""
        return self.backend in POLICIES

    @property
    def runs_on(self) -> str:
        """The backend the job starts on: "auto" starts locally; a policy job waits for its placement."""
        if self.policy:
            return self.backend
        return "replicate" if self.backend == "replicate" else "local"

    def to_wire(self) -> dict[str, Any]:
        policy = {name: getattr(self, name) for name in POLICY_PARAMS if getattr(self, name) is not None}
        return {
            "backend": self.backend,
            "replicate_model": self.replicate_model,
            **policy,
            **asdict(self.generation),
            **asdict(self.assets),
        }

    def on_backend(self, backend: str) -> dict[str, Any]:
        """The parameters of the same model made on `backend` (a peer runs a policy job as a local one)."""
        wire = self.to_wire()
        for name in POLICY_PARAMS:
            wire.pop(name, None)
        return {**wire, "backend": backend}

    def cache_key(self, image_sha256: str, model: str) -> str:
        """Equal for local jobs that would make the same model: same image, model and output parameters."""
        output = {
            name: value
            for name, value in {**asdict(self.generation), **asdict(self.assets)}.items()
            if name not in RUN_ONLY_PARAMS
        }
        return fingerprint({"image": image_sha256, "model": model, "backend": "local", "params": output})


def fingerprint(key: dict[str, Any]) -> str:
    """A cache key: the SHA-256 of the JSON of everything that decides the model a job makes."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def parse_params(
    raw: Any,
    replicate_models: Sequence[str] = (DEFAULT_REPLICATE_MODEL,),
    replicate_refusal: tuple[str, str] | None = NO_REPLICATE,
) -> JobParams:
    """Check a submit's `params`. `replicate_models` are the configured model names, the default first;
    `replicate_refusal` is why replicate jobs are refused here (a code and a sentence), or None."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ProtocolError("bad_parameter", '"params" must be a JSON object.')
    unknown = sorted(set(raw) - set(PARAM_NAMES))
    if unknown:
        raise ProtocolError(
            "bad_parameter", f"Unknown parameter(s) {', '.join(unknown)}; known: {', '.join(PARAM_NAMES)}."
        )
    backend = raw.get("backend", "local")
    if backend not in BACKENDS:
        raise ProtocolError(
            "bad_parameter", f'"backend" must be one of {", ".join(BACKENDS)}, not {backend!r}.'
        )
    if backend == "replicate" and replicate_refusal is not None:
        raise ProtocolError(*replicate_refusal)
    replicate_model = raw.get("replicate_model", replicate_models[0])
    if replicate_model not in replicate_models:
        raise ProtocolError(
            "bad_parameter",
            f'"replicate_model" must be one of {", ".join(replicate_models)}, not {replicate_model!r}.',
        )
    generation = GenerationParams(
        **{field.name: _checked(raw, field.name, field.default) for field in GENERATION_FIELDS}
    )
    if not 0.0 < generation.foreground_ratio <= 1.0:
        raise ProtocolError(
            "bad_parameter",
            f'"foreground_ratio" must be above 0 and at most 1, not {generation.foreground_ratio}.',
        )
    assets = AssetOptions(**{field.name: _checked(raw, field.name, field.default) for field in ASSET_FIELDS})
    if assets.texture not in (0, *TEXTURE_SIZES):
        sizes = ", ".join(map(str, TEXTURE_SIZES))
        raise ProtocolError(
            "bad_parameter", f'"texture" must be 0 (vertex colours) or one of {sizes}, not {assets.texture}.'
        )
    if 0 < generation.chunk_size < MIN_CHUNK_SIZE:
        raise ProtocolError(
            "bad_parameter",
            f'"chunk_size" must be 0 (what the device evaluates best) or at least {MIN_CHUNK_SIZE}, '
            f"not {generation.chunk_size}.",
        )
    if 0 < assets.faces < MIN_FACES:
        raise ProtocolError(
            "bad_parameter", f'"faces" must be 0 (all of them) or at least {MIN_FACES}, not {assets.faces}.'
        )
    return JobParams(backend, generation, assets, replicate_model, **_policy(raw, backend))


def _policy(raw: dict, backend: str) -> dict[str, Any]:
    """`budget`, `deadline` and `batch`: only a policy job has them (only a cheapest one a deadline)."""
    named = [name for name in POLICY_PARAMS if raw.get(name) is not None]
    if backend not in POLICIES and named:
        raise ProtocolError(
            "bad_parameter",
            f"{', '.join(named)} only apply to the policies {' and '.join(POLICIES)}, "
            f"not to backend {backend!r}.",
        )
    if backend != "cheapest" and raw.get("deadline") is not None:
        raise ProtocolError("bad_parameter", '"deadline" only applies to backend "cheapest".')
    return {
        "budget": _seconds_or_dollars(raw, "budget", 1e6),
        "deadline": _seconds_or_dollars(raw, "deadline", MAX_DEADLINE_SECONDS),
        "batch": _batch(raw.get("batch")),
    }


def _seconds_or_dollars(raw: dict, name: str, high: float) -> float | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= high:
        raise ProtocolError("bad_parameter", f'"{name}" must be a number from 0 to {high:g}, not {value!r}.')
    return float(value)


def _batch(value: Any) -> str | None:
    if value is not None and not (isinstance(value, str) and 1 <= len(value) <= MAX_BATCH_LENGTH):
        raise ProtocolError(
            "bad_parameter", f'"batch" must be a string of 1 to {MAX_BATCH_LENGTH} characters, not {value!r}.'
        )
    return value


def _checked(raw: dict, name: str, default: Any) -> Any:
    """The parameter, or its default, if it has the default's type (and lies within its range)."""
    value = raw.get(name, default)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ProtocolError("bad_parameter", f'"{name}" must be true or false, not {value!r}.')
    elif isinstance(default, int):
        low, high = INTEGER_RANGES[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ProtocolError(
                "bad_parameter", f'"{name}" must be a whole number from {low} to {high}, not {value!r}.'
            )
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProtocolError("bad_parameter", f'"{name}" must be a number, not {value!r}.')
    elif name in NUMBER_RANGES and not NUMBER_RANGES[name][0] <= value <= NUMBER_RANGES[name][1]:
        low, high = NUMBER_RANGES[name]
        raise ProtocolError(
            "bad_parameter", f'"{name}" must be a number from {low:g} to {high:g}, not {value!r}.'
        )
    return type(default)(value)
