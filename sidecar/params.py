"""A job's parameters as a client sends them: checked, completed with defaults, and tied to a backend."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from shared.protocol import ProtocolError

from .pipeline import GenerationParams

# What a client may name, and what runs jobs in this sidecar; "auto" picks among the latter.
BACKENDS = ("local", "auto", "replicate")
RUNNING_BACKENDS = ("local",)
# Bounds of the whole-number parameters.
INTEGER_RANGES = {"resolution": (8, 1024), "chunk_size": (1024, 1 << 22), "coarse_resolution": (2, 1024)}
# Parameters that change how a job runs but not the model it makes.
RUN_ONLY_PARAMS = ("chunk_size",)

GENERATION_FIELDS = fields(GenerationParams)
PARAM_NAMES = ("backend", *(field.name for field in GENERATION_FIELDS))


@dataclass(frozen=True)
class JobParams:
    backend: str  # as the client asked: "local" or "auto"
    generation: GenerationParams

    @property
    def runs_on(self) -> str:
        return "local"

    def to_wire(self) -> dict[str, Any]:
        return {"backend": self.backend, **asdict(self.generation)}

    def cache_key(self, image_sha256: str, model: str) -> str:
        """Equal for jobs that would make the same model: same image, model, backend and output parameters."""
        output = {
            name: value for name, value in asdict(self.generation).items() if name not in RUN_ONLY_PARAMS
        }
        key = {"image": image_sha256, "model": model, "backend": self.runs_on, "params": output}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def parse_params(raw: Any) -> JobParams:
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
    if backend != "auto" and backend not in RUNNING_BACKENDS:
        raise ProtocolError(
            "backend_unavailable",
            f"This sidecar cannot run jobs on {backend} yet; use {' or '.join(RUNNING_BACKENDS)}.",
        )
    generation = GenerationParams(
        **{field.name: _checked(raw, field.name, field.default) for field in GENERATION_FIELDS}
    )
    if not 0.0 < generation.foreground_ratio <= 1.0:
        raise ProtocolError(
            "bad_parameter",
            f'"foreground_ratio" must be above 0 and at most 1, not {generation.foreground_ratio}.',
        )
    return JobParams(backend, generation)


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
    return type(default)(value)
