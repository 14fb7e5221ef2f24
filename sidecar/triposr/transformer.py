"""The 1D transformer backbone that lets the triplane tokens attend to the image tokens.

Names follow the diffusers-style modules of the official code (`transformer_blocks.N.attn1.to_q`, ...).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import BackboneConfig
from .device import cpu_features

# Queries per block of `attend`'s half-precision path: one head's block of scores (256 x 3072 at most) stays
# in cache.
ATTENTION_BLOCK = 256


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Softmax attention of heads [B, H, L, D] over keys and values [B, H, S, D].

    SDPA, except in half precision on a CPU without AMX: there SDPA's kernel multiplies in float32, no
    quicker than float32 itself, while blocks of one head's queries through half-precision matrix products
    (float32 accumulation, probabilities rounded to the half type) run the backbone's attention about 1.6x
    quicker (measured on AVX512-BF16).
    """
    if query.device.type != "cpu" or query.dtype == torch.float32 or "amx_bf16" in cpu_features():
        return F.scaled_dot_product_attention(query, key, value)
    out = torch.empty_like(query)
    scaled = query * query.shape[-1] ** -0.5
    keys = key.transpose(-1, -2)
    for batch in range(query.shape[0]):
        for head in range(query.shape[1]):
            for start in range(0, query.shape[2], ATTENTION_BLOCK):
                rows = slice(start, start + ATTENTION_BLOCK)
                weights = torch.softmax(scaled[batch, head, rows] @ keys[batch, head], dim=-1)
                torch.mm(weights, value[batch, head], out=out[batch, head, rows])
    return out


class Attention(nn.Module):
    """Multi-head attention with bias-free projections; keys and values may come from another sequence."""

    def __init__(self, query_dim: int, heads: int, head_dim: int, context_dim: int | None = None):
        super().__init__()
        inner = heads * head_dim
        context_dim = context_dim or query_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(0.0)])

    def forward(self, hidden: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = hidden if context is None else context
        batch = hidden.shape[0]

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, -1, self.heads, x.shape[-1] // self.heads).transpose(1, 2)

        out = attend(heads(self.to_q(hidden)), heads(self.to_k(context)), heads(self.to_v(context)))
        out = out.transpose(1, 2).reshape(batch, -1, out.shape[1] * out.shape[3])
        return self.to_out[0](out)


class GEGLU(nn.Module):
    """A linear layer whose second half, through GELU, gates its first half."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        # GELU in float32 even under half precision, as the official code does.
        return value * F.gelu(gate.float()).to(value.dtype)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        inner = dim * mult
        self.net = nn.ModuleList([GEGLU(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[2](self.net[0](x))


class BasicTransformerBlock(nn.Module):
    """Self-attention, cross-attention to the image tokens, feed-forward; each pre-normed and residual."""

    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int, affine: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=affine)
        self.attn1 = Attention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=affine)
        self.attn2 = Attention(dim, heads, head_dim, context_dim)
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=affine)
        self.ff = FeedForward(dim)

    def forward(self, hidden: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        hidden = hidden + self.attn1(self.norm1(hidden))
        hidden = hidden + self.attn2(self.norm2(hidden), context)
        return hidden + self.ff(self.norm3(hidden))


class Transformer1D(nn.Module):
    def __init__(self, config: BackboneConfig):
        super().__init__()
        inner = config.num_attention_heads * config.attention_head_dim
        self.norm = nn.GroupNorm(config.norm_num_groups, config.in_channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(config.in_channels, inner)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(
                inner,
                config.num_attention_heads,
                config.attention_head_dim,
                config.cross_attention_dim,
                config.norm_elementwise_affine,
            )
            for _ in range(config.num_layers)
        )
        self.proj_out = nn.Linear(inner, config.in_channels)

    def forward(
        self, tokens: torch.Tensor, context: torch.Tensor, progress: Callable[[float], None] | None = None
    ) -> torch.Tensor:
        """Tokens [B, C, L] and image tokens [B, T, D] to tokens [B, C, L]. `progress` is called before each
        block with the share of blocks done, so that a caller can stop (by raising) between blocks."""
        hidden = self.norm(tokens).permute(0, 2, 1)
        hidden = self.proj_in(hidden)
        for index, block in enumerate(self.transformer_blocks):
            if progress is not None:
                progress(index / len(self.transformer_blocks))
            hidden = block(hidden, context)
        return self.proj_out(hidden).permute(0, 2, 1) + tokens
