"""The Replicate models a job can run on: built in, and more from a JSON file (`serve --replicate-models`).

Each names the model and its pinned version, how our parameters become its inputs, where the mesh is in its
output, how its frame turns into ours, and what a second of its hardware costs. The file has the built-ins'
shape:

    {"default": "hunyuan3d-2",
     "models": {"hunyuan3d-2": {"model": "tencent/hunyuan3d-2", "version": "b1b9…",
                                "input": {"image": "{image}", "remove_background": "{remove_background}"},
                                "output": "mesh", "frame": "ours", "price_per_second": 0.0014}}}

In `input`, a string that is exactly `{name}` stands for the image (`{image}`) or for one of the job's
parameters (`{foreground_ratio}`, `{remove_background}`, `{resolution}`, ...); everything else is sent as it
is. `output` is a dotted path into the prediction's output (empty: the output itself). `version` may be left
out for Replicate's official models, which run their latest version. `vertex_colours` says what the numbers
of a mesh's vertex colours (glTF's COLOR_0, or a PLY's or OBJ's) mean: "srgb" (the default) for files that
trimesh wrote, as most models on Replicate do, which hold the image's sRGB bytes; "linear" for files that
follow the glTF specification, whose COLOR_0 is linear light.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..assets.options import AssetOptions
from ..params import DEFAULT_REPLICATE_MODEL, fingerprint
from ..pipeline import GenerationParams

# TripoSR on Replicate, pinned: the version public clients run. Its predictor is camenduru/TripoSR-replicate.
TRIPO_SR_VERSION = "e0d3fe8abce3ba86497ea3530d9eae59af7b2231b6c82bedfc32b0732d35ec3a"
TRELLIS_VERSION = "e8f6c45206993f297372f5436b90350817bd9b4a0d52d2a76df50c1c8afa2b3c"
HUNYUAN3D_2_VERSION = "b1b9449a1277e10402781c5d41eb30c0a0683504fb23fab591ca9dfc2aabe1cb"
# Replicate's price for a second of an Nvidia A100 (80GB): TripoSR's 25 to 30 s there cost about $0.04.
DEFAULT_PRICE_PER_SECOND = 0.0014
DEFAULT_HARDWARE = "Nvidia A100 (80GB)"

# How a model's coordinates (glTF's, as its file has them) turn into ours: y up, the side seen in the image
# toward +z, which Blender's importer makes z up with that side toward -Y. A mirror (determinant -1) also
# reverses the faces' winding, so that they keep facing out.
FRAMES: dict[str, tuple[tuple[float, ...], ...]] = {
    "ours": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    # TripoSR's gradio orientation as camenduru/tripo-sr has it, from an early copy of the Hugging Face Space
    # that still mirrors depth: TripoSR's (x, y, z) is written as (y, z, -x), where ours is (y, z, x).
    "tripo-sr-mirrored": ((1, 0, 0), (0, 1, 0), (0, 0, -1)),
    # TripoSR's gradio orientation without the mirror, (-y, z, -x): half a turn about the up axis from ours.
    "tripo-sr-gradio": ((-1, 0, 0), (0, 1, 0), (0, 0, -1)),
}

BUILT_IN: dict[str, dict[str, Any]] = {
    DEFAULT_REPLICATE_MODEL: {
        "model": "camenduru/tripo-sr",
        "version": TRIPO_SR_VERSION,
        "input": {
            "image_path": "{image}",
            "do_remove_background": "{remove_background}",
            "foreground_ratio": "{foreground_ratio}",
        },
        "output": "",
        "frame": "tripo-sr-mirrored",
    },
    "trellis": {
        "model": "firtoz/trellis",
        "version": TRELLIS_VERSION,
        # A fixed seed, so that the same image makes the same model and the store can answer for it; no
        # videos, which would be paid for and thrown away.
        "input": {
            "images": ["{image}"],
            "seed": 0,
            "randomize_seed": False,
            "generate_model": True,
            "generate_color": False,
            "generate_normal": False,
            "save_gaussian_ply": False,
        },
        "output": "model_file",
        "frame": "ours",
    },
    "hunyuan3d-2": {
        "model": "tencent/hunyuan3d-2",
        "version": HUNYUAN3D_2_VERSION,
        "input": {"image": "{image}", "remove_background": "{remove_background}", "seed": 1234},
        "output": "mesh",
        "frame": "ours",
    },
}

IMAGE = "image"
PLACEHOLDERS = (IMAGE, *(field.name for field in fields(GenerationParams)))
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_MODEL_NAME = re.compile(r"[\w.-]+/[\w.-]+")
_VERSION = re.compile(r"[0-9a-f]{64}")
_KEYS = {"model", "version", "input", "output", "frame", "price_per_second", "hardware", "vertex_colours"}
COLOUR_SPACES = ("srgb", "linear")


class ModelConfigError(Exception):
    """A Replicate model's configuration cannot be used; the message says which and why."""


@dataclass(frozen=True)
class ReplicateModel:
    name: str  # what a job's `replicate_model` calls it
    model: str  # owner/name on Replicate
    version: str | None  # the pinned version id; None for an official model's latest
    input: dict[str, Any]  # the prediction's input, with placeholders
    output: tuple[str, ...]  # where the mesh is in the output
    frame: tuple[tuple[float, ...], ...]  # 3 x 3, from the model's frame to ours
    price_per_second: float  # US dollars per second of prediction time
    hardware: str
    vertex_colours: str = "srgb"  # what its files' vertex colours hold: "srgb" bytes or "linear" light

    @property
    def identity(self) -> str:
        return f"replicate:{self.model}:{self.version or 'latest'}"

    def inputs(self, params: GenerationParams, image: Any) -> dict[str, Any]:
        """The prediction's input for a job: the placeholders filled in, the image as `image`."""
        values = {IMAGE: image, **asdict(params)}
        return _fill(self.input, values)

    def cache_key(self, image_sha256: str, params: GenerationParams, assets: AssetOptions) -> str:
        """Equal for jobs that would send Replicate the same prediction and make the same asset of it."""
        inputs = self.inputs(params, image=image_sha256)
        return fingerprint(
            {"model": self.identity, "backend": "replicate", "input": inputs, "assets": asdict(assets)}
        )

    def matrix(self) -> np.ndarray:
        return np.array(self.frame, dtype=np.float64)


def load_models(
    path: Path | None = None, price_per_second: float = DEFAULT_PRICE_PER_SECOND
) -> dict[str, ReplicateModel]:
    """The built-in models and those of the file, the default first; `price_per_second` for any that does
    not name its own."""
    specs = dict(BUILT_IN)
    default = DEFAULT_REPLICATE_MODEL
    if path is not None:
        config = _read(path)
        specs.update(config.get("models", {}))
        default = config.get("default", default)
        if default not in specs:
            raise ModelConfigError(f"{path}: the default model {default!r} is not among {', '.join(specs)}.")
    models = {name: _model(name, spec, price_per_second) for name, spec in specs.items()}
    return {default: models.pop(default), **models}


def _read(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelConfigError(f"Cannot read the Replicate models file {path}: {exc.strerror}.") from exc
    except ValueError as exc:
        raise ModelConfigError(f"The Replicate models file {path} is not valid JSON: {exc}.") from exc
    if not (isinstance(config, dict) and isinstance(config.get("models", {}), dict)):
        raise ModelConfigError(f'{path} must hold a JSON object with "models": {{name: model, ...}}.')
    return config


def _model(name: str, spec: Any, price_per_second: float) -> ReplicateModel:
    def problem(text: str) -> ModelConfigError:
        return ModelConfigError(f"Replicate model {name!r}: {text}")

    if not isinstance(spec, dict):
        raise problem("must be a JSON object.")
    if unknown := sorted(set(spec) - _KEYS):
        raise problem(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}.")
    model, version = spec.get("model"), spec.get("version")
    if not (isinstance(model, str) and _MODEL_NAME.fullmatch(model)):
        raise problem(f'"model" must name it as owner/name, not {model!r}.')
    if version is not None and not (isinstance(version, str) and _VERSION.fullmatch(version)):
        raise problem(f'"version" must be a version id of 64 hexadecimal digits, not {version!r}.')
    template = spec.get("input")
    if not isinstance(template, dict):
        raise problem('"input" must be a JSON object of the prediction\'s inputs.')
    names = _placeholders(template)
    if unknown := sorted(names - set(PLACEHOLDERS)):
        raise problem(f"unknown placeholder(s) {', '.join(unknown)}; known: {', '.join(PLACEHOLDERS)}.")
    if IMAGE not in names:
        raise problem('"input" must send the image somewhere, as "{image}".')
    output = spec.get("output", "")
    if not isinstance(output, str):
        raise problem('"output" must be a dotted path into the output, such as "model_file".')
    price = spec.get("price_per_second", price_per_second)
    if isinstance(price, bool) or not isinstance(price, (int, float)) or not 0 <= price < 1:
        raise problem(f'"price_per_second" must be a number of dollars from 0 to 1, not {price!r}.')
    hardware = spec.get("hardware", DEFAULT_HARDWARE)
    if not isinstance(hardware, str):
        raise problem('"hardware" must be a string.')
    vertex_colours = spec.get("vertex_colours", COLOUR_SPACES[0])
    if vertex_colours not in COLOUR_SPACES:
        raise problem(f'"vertex_colours" must be one of {", ".join(COLOUR_SPACES)}, not {vertex_colours!r}.')
    return ReplicateModel(
        name=name,
        model=model,
        version=version,
        input=template,
        output=tuple(part for part in output.split(".") if part),
        frame=_frame(spec.get("frame", "ours"), problem),
        price_per_second=float(price),
        hardware=hardware,
        vertex_colours=vertex_colours,
    )


def _frame(frame: Any, problem) -> tuple[tuple[float, ...], ...]:
    if isinstance(frame, str):
        if frame not in FRAMES:
            raise problem(f'"frame" must be one of {", ".join(FRAMES)}, or a 3 x 3 matrix, not {frame!r}.')
        return FRAMES[frame]
    matrix = np.asarray(frame, dtype=object)
    if matrix.shape != (3, 3) or not all(isinstance(value, (int, float)) for value in matrix.flat):
        raise problem(f'"frame" must be a name or a 3 x 3 matrix of numbers, not {frame!r}.')
    if abs(abs(np.linalg.det(matrix.astype(np.float64))) - 1) > 1e-6:
        raise problem('"frame" must turn or mirror the model without stretching it (determinant 1 or -1).')
    return tuple(tuple(float(value) for value in row) for row in frame)


def _placeholders(value: Any) -> set[str]:
    if isinstance(value, str):
        match = _PLACEHOLDER.fullmatch(value)
        return {match.group(1)} if match else set()
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return set().union(*map(_placeholders, value))
    return set()


def _fill(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, str) and (match := _PLACEHOLDER.fullmatch(value)):
        return values[match.group(1)]
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    return value
