"""The DINO ViT that turns the conditioning image into tokens.

Module and parameter names follow transformers 4.35's `ViTModel` (the version TripoSR pins), because the
official checkpoint stores the ViT under those names. The pooler is unused but kept: the checkpoint has it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ViTConfig
from .device import cpu_path

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ViTPatchEmbeddings(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.projection = nn.Conv2d(
            config.num_channels, config.hidden_size, config.patch_size, stride=config.patch_size
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.projection(pixels).flatten(2).transpose(1, 2)


class ViTEmbeddings(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.patch_size = config.patch_size
        grid = config.image_size // config.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.position_embeddings = nn.Parameter(torch.zeros(1, grid * grid + 1, config.hidden_size))
        self.patch_embeddings = ViTPatchEmbeddings(config)

    def interpolated_positions(self, height: int, width: int) -> torch.Tensor:
        """Position embeddings resized to a `height` x `width` image, as transformers 4.35 does it.

        Runs on the CPU: bicubic resampling is missing or differs on some accelerators, and for a
        fixed image size this is a small, constant computation.
        """
        table = self.position_embeddings
        cls_position, patch_positions = table[:, :1], table[:, 1:]
        side = math.isqrt(patch_positions.shape[1])
        rows, cols = height // self.patch_size, width // self.patch_size
        if rows == side and cols == side:
            return table
        with cpu_path():
            grid = patch_positions.detach().to("cpu", torch.float32)
            grid = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2)
            # transformers <= 4.44 passes a scale factor nudged by 0.1 rather than the target size;
            # the sampling positions, and so the values, follow from that factor.
            grid = F.interpolate(
                grid,
                scale_factor=((rows + 0.1) / side, (cols + 0.1) / side),
                mode="bicubic",
                align_corners=False,
            )
            grid = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)
        return torch.cat([cls_position, grid.to(table.device, table.dtype)], dim=1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embeddings(pixels)
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        tokens = torch.cat([cls, patches], dim=1)
        return tokens + self.interpolated_positions(pixels.shape[-2], pixels.shape[-1])


class ViTSelfAttention(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        size = config.hidden_size
        self.query = nn.Linear(size, size, bias=config.qkv_bias)
        self.key = nn.Linear(size, size, bias=config.qkv_bias)
        self.value = nn.Linear(size, size, bias=config.qkv_bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        batch, length, size = hidden.shape

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, length, self.num_heads, -1).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            heads(self.query(hidden)), heads(self.key(hidden)), heads(self.value(hidden))
        )
        return out.transpose(1, 2).reshape(batch, length, size)


class ViTDense(nn.Module):
    """One linear layer under the name `dense`, the way transformers nests its output layers."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.dense = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x)


class ViTAttention(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.attention = ViTSelfAttention(config)
        self.output = ViTDense(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.output(self.attention(hidden))


class ViTLayer(nn.Module):
    """A pre-norm block: self-attention, then a GELU MLP, each added to its input."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.attention = ViTAttention(config)
        self.intermediate = ViTDense(config.hidden_size, config.intermediate_size)
        self.output = ViTDense(config.intermediate_size, config.hidden_size)
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = hidden + self.attention(self.layernorm_before(hidden))
        return hidden + self.output(F.gelu(self.intermediate(self.layernorm_after(hidden))))


class ViTEncoder(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.layer = nn.ModuleList(ViTLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            hidden = layer(hidden)
        return hidden


class ViTModel(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.embeddings = ViTEmbeddings(config)
        self.encoder = ViTEncoder(config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler = ViTDense(config.hidden_size, config.hidden_size)  # in the checkpoint, unused

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised images [B, 3, H, W] to the last hidden state [B, 1 + patches, hidden]."""
        return self.layernorm(self.encoder(self.embeddings(pixels)))


class DINOImageTokenizer(nn.Module):
    """ImageNet normalisation followed by the ViT; returns every token, CLS included."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.model = ViTModel(config)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] in 0..1 to tokens [B, 1 + patches, hidden]."""
        # Made here rather than held as buffers, so a model built on the meta device and then
        # given its checkpoint tensors has nothing left to initialise.
        mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return self.model((images - mean) / std)
