"""The model's configuration, read from the `config.yaml` that ships with the weights.

The official file names the original implementation's classes and one `${...}` reference; we read it
with a safe YAML parser, resolve the reference ourselves and check that each class is one we implement.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

OFFICIAL_CONFIG = Path(__file__).with_name("official_config.yaml")

# facebook/dino-vitb16's config.json, which the official code downloads at construction time.
DINO_VITB16 = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "image_size": 224,
    "patch_size": 16,
    "num_channels": 3,
    "qkv_bias": True,
}

# The classes of the official implementation that this package reimplements, by config section.
SUPPORTED_CLASSES = {
    "image_tokenizer_cls": "tsr.models.tokenizers.image.DINOSingleImageTokenizer",
    "tokenizer_cls": "tsr.models.tokenizers.triplane.Triplane1DTokenizer",
    "backbone_cls": "tsr.models.transformer.transformer_1d.Transformer1D",
    "post_processor_cls": "tsr.models.network_utils.TriplaneUpsampleNetwork",
    "decoder_cls": "tsr.models.network_utils.NeRFMLP",
    "renderer_cls": "tsr.models.nerf_renderer.TriplaneNeRFRenderer",
}

_REFERENCE = re.compile(r"\$\{([^}]+)\}")


@dataclass(frozen=True)
class ViTConfig:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str
    layer_norm_eps: float
    image_size: int
    patch_size: int
    num_channels: int
    qkv_bias: bool


@dataclass(frozen=True)
class BackboneConfig:
    in_channels: int
    num_attention_heads: int
    attention_head_dim: int
    num_layers: int
    cross_attention_dim: int
    norm_num_groups: int = 32
    attention_bias: bool = False
    activation_fn: str = "geglu"
    only_cross_attention: bool = False
    double_self_attention: bool = False
    upcast_attention: bool = False
    norm_type: str = "layer_norm"
    norm_elementwise_affine: bool = True
    out_channels: int | None = None
    dropout: float = 0.0
    gradient_checkpointing: bool = False


@dataclass(frozen=True)
class DecoderConfig:
    in_channels: int
    n_neurons: int
    n_hidden_layers: int
    activation: str = "relu"
    bias: bool = True
    weight_init: str | None = "kaiming_uniform"
    bias_init: str | None = None


@dataclass(frozen=True)
class RendererConfig:
    radius: float
    feature_reduction: str = "concat"
    density_activation: str = "trunc_exp"
    density_bias: float = -1.0
    color_activation: str = "sigmoid"
    num_samples_per_ray: int = 128
    randomized: bool = False


@dataclass(frozen=True)
class TripoSRConfig:
    cond_image_size: int
    vit: ViTConfig
    plane_size: int
    triplane_channels: int
    backbone: BackboneConfig
    upsample_in_channels: int
    upsample_out_channels: int
    decoder: DecoderConfig
    renderer: RendererConfig


def architecture(config: TripoSRConfig) -> str:
    """Names the network's shape: equal for any weights of it (which run equally fast), official or random."""
    described = json.dumps(asdict(config), sort_keys=True).encode()
    return hashlib.sha256(described).hexdigest()[:12]


def load_config(config_path: Path, vit_config_path: Path | None = None) -> TripoSRConfig:
    """Read `config.yaml`; the ViT settings come from `vit_config_path` when given and present."""
    try:
        raw = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"Cannot read the model config {config_path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"The model config {config_path} is not a mapping of settings.")
    vit = dict(DINO_VITB16)
    if vit_config_path is not None and Path(vit_config_path).is_file():
        try:
            vit.update(json.loads(Path(vit_config_path).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"Cannot read the ViT config {vit_config_path}: {exc}") from exc
    return parse_config(resolve_references(raw), vit)


def resolve_references(raw: dict[str, Any]) -> dict[str, Any]:
    """Replace `${dotted.path}` references by the values they point to, as OmegaConf would."""

    def lookup(path: str, seen: tuple[str, ...]) -> Any:
        if path in seen:
            raise ConfigError(f"The model config refers to itself in a loop through '{path}'.")
        node: Any = raw
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"The model config refers to '{path}', which it does not set.")
            node = node[part]
        return resolve(node, (*seen, path))

    def resolve(node: Any, seen: tuple[str, ...] = ()) -> Any:
        if isinstance(node, dict):
            return {key: resolve(value, seen) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value, seen) for value in node]
        if isinstance(node, str):
            whole = _REFERENCE.fullmatch(node.strip())
            if whole:  # a bare reference keeps the referenced value's type
                return lookup(whole.group(1).strip(), seen)
            return _REFERENCE.sub(lambda m: str(lookup(m.group(1).strip(), seen)), node)
        return node

    return resolve(raw)


def parse_config(cfg: dict[str, Any], vit: dict[str, Any]) -> TripoSRConfig:
    for key, expected in SUPPORTED_CLASSES.items():
        if cfg.get(key, expected) != expected:
            raise ConfigError(
                f"The model config asks for {key} = {cfg[key]!r}; this implementation provides "
                f"only {expected}."
            )
    try:
        config = TripoSRConfig(
            cond_image_size=int(cfg["cond_image_size"]),
            # A ViT config.json carries many keys that do not concern inference.
            vit=_build(ViTConfig, vit, "ViT", strict=False),
            plane_size=int(cfg["tokenizer"]["plane_size"]),
            triplane_channels=int(cfg["tokenizer"]["num_channels"]),
            backbone=_build(BackboneConfig, cfg["backbone"], "backbone"),
            upsample_in_channels=int(cfg["post_processor"]["in_channels"]),
            upsample_out_channels=int(cfg["post_processor"]["out_channels"]),
            decoder=_build(DecoderConfig, cfg["decoder"], "decoder"),
            renderer=_build(RendererConfig, cfg["renderer"], "renderer"),
        )
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"The model config lacks a required setting: {exc}") from exc
    _check_supported(config)
    return config


def _build(cls: type, values: dict[str, Any], section: str, strict: bool = True) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown and strict:
        raise ConfigError(f"Unknown setting(s) in the {section} section: {', '.join(sorted(unknown))}")
    return cls(**{key: value for key, value in values.items() if key in known})


def _check_supported(config: TripoSRConfig) -> None:
    backbone, decoder, renderer = config.backbone, config.decoder, config.renderer
    unsupported = {
        "backbone.activation_fn": (backbone.activation_fn, {"geglu"}),
        "backbone.norm_type": (backbone.norm_type, {"layer_norm"}),
        "decoder.activation": (decoder.activation, {"silu", "relu"}),
        "renderer.feature_reduction": (renderer.feature_reduction, {"concat"}),
        "renderer.density_activation": (renderer.density_activation, {"exp", "trunc_exp"}),
        "renderer.color_activation": (renderer.color_activation, {"sigmoid"}),
        "vit.hidden_act": (config.vit.hidden_act, {"gelu"}),
    }
    for name, (value, allowed) in unsupported.items():
        if value not in allowed:
            raise ConfigError(f"{name} = {value!r} is not supported (expected one of {sorted(allowed)}).")
    flags = ("only_cross_attention", "double_self_attention", "upcast_attention", "attention_bias")
    for flag in flags:
        if getattr(backbone, flag):
            raise ConfigError(f"backbone.{flag} = true is not supported by this implementation.")
    if backbone.out_channels not in (None, backbone.in_channels):
        raise ConfigError("backbone.out_channels must equal in_channels (the output is residual).")
    if config.upsample_out_channels * 3 != decoder.in_channels:
        raise ConfigError(
            "decoder.in_channels must be three times post_processor.out_channels "
            "(one feature vector per plane, concatenated)."
        )
