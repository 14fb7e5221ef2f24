"""Our network against the official one: the checkpoint layout, and outputs on the tiny golden fixture."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sidecar.triposr import build_model, load_config, load_model
from sidecar.triposr.config import OFFICIAL_CONFIG
from sidecar.triposr.errors import ModelLoadError
from sidecar.triposr.grid import density_grid, grid_axis


def test_the_official_checkpoint_layout_is_matched_name_for_name(tiny_weights):
    listing = json.loads((tiny_weights.parent / "official_state_dict.json").read_text())
    model = build_model(load_config(OFFICIAL_CONFIG))  # on the meta device: no memory, no init
    ours = [(name, list(tensor.shape)) for name, tensor in model.state_dict().items()]
    official = [(entry["name"], entry["shape"]) for entry in listing["parameters"]]
    assert len(official) == 549
    assert ours == official
    assert sum(tensor.numel() for tensor in model.state_dict().values()) == listing["num_parameters"]


def test_the_tiny_model_loads_strictly_through_the_weights_path(tiny_weights):
    listing = json.loads((tiny_weights / "tiny_state_dict.json").read_text())
    model = load_model(str(tiny_weights), device="cpu")
    assert list(model.state_dict()) == [entry["name"] for entry in listing["parameters"]]
    assert all(tensor.device.type == "cpu" for tensor in model.state_dict().values())


def test_preprocessing_matches_the_official_bytes(tiny_model, tiny_weights, golden):
    pixels = tiny_model.preprocess(Image.open(tiny_weights / "input.png"), foreground_ratio=0.85)
    assert pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, golden["preprocessed_image_uint8"])
    conditioning = tiny_model.conditioning_images(pixels).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(conditioning, golden["cond_image"], atol=1e-6, rtol=0)


def test_image_tokens_and_scene_codes_match(tiny_model, golden):
    vit = tiny_model.image_tokenizer.model
    positions = vit.embeddings.interpolated_positions(512, 512).detach().numpy()
    np.testing.assert_allclose(positions, golden["vit_pos_embed_interpolated"], atol=1e-5, rtol=1e-5)
    conditioning = tiny_model.conditioning_images(golden["preprocessed_image_uint8"])
    with torch.no_grad():
        tokens = tiny_model.image_tokenizer(conditioning).numpy()
    np.testing.assert_allclose(tokens, golden["image_tokens"], atol=1e-5, rtol=1e-5)
    scene_codes = tiny_model.encode(golden["preprocessed_image_uint8"]).numpy()
    assert scene_codes.shape == golden["scene_codes"].shape
    np.testing.assert_allclose(scene_codes, golden["scene_codes"], atol=1e-5, rtol=1e-5)


def test_the_field_matches_at_random_points(tiny_model, golden):
    scene_code = torch.from_numpy(golden["scene_codes"][0])
    points = torch.from_numpy(golden["query_points"])
    with torch.no_grad():
        raw_density, _ = tiny_model.field.raw(scene_code, points)
    np.testing.assert_allclose(raw_density.numpy(), golden["query_density_raw"][:, 0], atol=5e-5, rtol=0)
    density, color = tiny_model.query(scene_code, points, chunk_size=1000)
    np.testing.assert_allclose(color.numpy(), golden["query_color"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(density.numpy(), golden["query_density"][:, 0], rtol=1e-4, atol=0)


def test_the_extraction_grid_has_the_official_points_in_the_official_order(tiny_model, golden):
    axis = grid_axis(32, tiny_model.radius)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    np.testing.assert_array_equal(points.numpy(), golden["grid_points"])
    field = tiny_model.field_query(torch.from_numpy(golden["scene_codes"][0]))
    # An odd chunk size, so boxes end mid-plane: the volume must not depend on it.
    volume = density_grid(field, 32, tiny_model.radius, chunk_size=999)
    level = volume - float(golden["mc_threshold"])
    np.testing.assert_allclose(level, golden["mc_level"], rtol=1e-4, atol=1e-3)
    # The lattice evaluation gives what the point query gives at the same points, to float rounding.
    with torch.no_grad():
        np.testing.assert_allclose(volume.reshape(-1), field(points)[0].numpy(), rtol=1e-5, atol=0)


def test_a_checkpoint_that_does_not_fit_its_config_is_refused(tmp_path, tiny_weights):
    for name in ("config.yaml", "vit_config.json"):
        (tmp_path / name).write_bytes((tiny_weights / name).read_bytes())
    state = torch.load(tiny_weights / "model.ckpt", weights_only=True)
    del state["image_tokenizer.model.pooler.dense.bias"]
    torch.save(state, tmp_path / "model.ckpt")
    with pytest.raises(ModelLoadError, match="1 missing tensor"):
        load_model(str(tmp_path), device="cpu")
    (tmp_path / "model.ckpt").write_bytes((tiny_weights / "model.ckpt").read_bytes()[:5000])
    with pytest.raises(ModelLoadError, match="cannot be read"):
        load_model(str(tmp_path), device="cpu")
