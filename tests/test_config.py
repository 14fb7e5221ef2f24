"""Reading the model's config.yaml without OmegaConf."""

from __future__ import annotations

import pytest

from sidecar.triposr.config import DINO_VITB16, OFFICIAL_CONFIG, load_config, resolve_references
from sidecar.triposr.errors import ConfigError


def test_the_official_config_resolves_its_reference_and_uses_dino_vitb16():
    config = load_config(OFFICIAL_CONFIG)
    assert config.backbone.in_channels == 1024  # from ${tokenizer.num_channels}
    assert config.vit.hidden_size == DINO_VITB16["hidden_size"] == 768
    assert config.renderer.radius == 0.87 and config.renderer.density_bias == -1.0


def test_the_vit_config_beside_the_model_wins(tiny_weights):
    config = load_config(tiny_weights / "config.yaml", tiny_weights / "vit_config.json")
    assert config.vit.hidden_size == 32 and config.vit.num_hidden_layers == 2
    assert config.backbone.in_channels == 64


def test_references_keep_types_inside_strings_and_refuse_loops():
    resolved = resolve_references({"a": {"n": 3}, "b": "${a.n}", "c": "size ${a.n}"})
    assert resolved["b"] == 3 and resolved["c"] == "size 3"
    with pytest.raises(ConfigError, match="loop"):
        resolve_references({"d": "${e}", "e": "${d}"})
    with pytest.raises(ConfigError, match="does not set"):
        resolve_references({"x": "${missing.key}"})


def test_classes_we_do_not_implement_are_named(tmp_path):
    text = OFFICIAL_CONFIG.read_text().replace(
        "tsr.models.network_utils.NeRFMLP", "tsr.models.network_utils.OtherMLP"
    )
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ConfigError, match="OtherMLP"):
        load_config(tmp_path / "config.yaml")
