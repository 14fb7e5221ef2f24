"""Triplanes: the learned tokens the backbone refines, their upsampling into scene codes, and the field.

A scene code is three feature planes [3, C, H, W] (planes xy, xz, yz). A point's features are the three
planes sampled bilinearly at its projections, concatenated; a small MLP turns them into density and colour.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from .config import DecoderConfig, RendererConfig

PLANES = 3


class Triplane1DTokenizer(nn.Module):
    """Learned triplane tokens, flattened plane by plane into one sequence for the backbone."""

    def __init__(self, plane_size: int, num_channels: int):
        super().__init__()
        self.plane_size = plane_size
        self.embeddings = nn.Parameter(
            torch.randn(PLANES, num_channels, plane_size, plane_size) / num_channels**0.5
        )

    def forward(self, batch_size: int) -> torch.Tensor:
        """[B, C, 3 * H * W] tokens."""
        tokens = self.embeddings.permute(1, 0, 2, 3).reshape(1, self.embeddings.shape[1], -1)
        return tokens.expand(batch_size, -1, -1)

    def detokenize(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, C, 3 * H * W] back to planes [B, 3, C, H, W]."""
        batch, channels, _ = tokens.shape
        planes = tokens.view(batch, channels, PLANES, self.plane_size, self.plane_size)
        return planes.permute(0, 2, 1, 3, 4)


class TriplaneUpsampleNetwork(nn.Module):
    """Doubles each plane's resolution with a stride-2 transposed convolution."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.upsample = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        """[B, 3, Cin, H, W] to scene codes [B, 3, Cout, 2H, 2W]."""
        batch = planes.shape[0]
        upsampled = self.upsample(planes.flatten(0, 1))
        return upsampled.view(batch, PLANES, *upsampled.shape[1:])


class NeRFMLP(nn.Module):
    """Point features to raw density (channel 0) and raw colour features (channels 1-3)."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        activation = {"silu": nn.SiLU, "relu": nn.ReLU}[config.activation]
        widths = [config.in_channels] + [config.n_neurons] * config.n_hidden_layers
        layers: list[nn.Module] = []
        for width_in, width_out in itertools.pairwise(widths):
            # in place, as in the official code: each activation's input is its layer's fresh output, and a
            # CPU runs the MLP a quarter faster for the memory it does not touch
            layers += [nn.Linear(width_in, width_out, bias=config.bias), activation(inplace=True)]
        layers.append(nn.Linear(config.n_neurons, 4, bias=config.bias))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


def scale_range(x: torch.Tensor, source: tuple[float, float], target: tuple[float, float]):
    """Map `x` linearly from `source` to `target`, with the official code's operation order.

    The order matters for bit-exact grid points: the mesh is extracted at exactly these positions.
    """
    x = (x - source[0]) / (source[1] - source[0])
    return x * (target[1] - target[0]) + target[0]


class TriplaneField:
    """Samples a scene code at points and decodes density and colour."""

    def __init__(self, decoder: NeRFMLP, config: RendererConfig):
        self.decoder = decoder
        self.radius = config.radius
        self.density_bias = config.density_bias

    def features(self, scene_code: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Scene code [3, C, H, W] and points [N, 3] (model frame) to features [N, 3 * C]."""
        coords = scale_range(points, (-self.radius, self.radius), (-1.0, 1.0))
        # plane 0 is indexed by (x, y), plane 1 by (x, z), plane 2 by (y, z); grid_sample's first
        # coordinate runs along the width.
        grid = torch.stack([coords[:, [0, 1]], coords[:, [0, 2]], coords[:, [1, 2]]])
        sampled = F.grid_sample(
            scene_code, grid.unsqueeze(1), mode="bilinear", align_corners=False
        )  # [3, C, 1, N]
        return sampled.squeeze(2).permute(2, 0, 1).flatten(1)

    def raw(self, scene_code: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw density [N] and raw colour features [N, 3], before activations."""
        out = self.decoder(self.features(scene_code, points))
        return out[:, 0], out[:, 1:4]

    def density(self, raw_density: torch.Tensor) -> torch.Tensor:
        return torch.exp(raw_density + self.density_bias)

    def query(self, scene_code: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Activated density [N] and colour in 0..1 [N, 3]."""
        raw_density, raw_color = self.raw(scene_code, points)
        return self.density(raw_density), torch.sigmoid(raw_color)

    def lattice(
        self, scene_code: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, zs: torch.Tensor
    ) -> torch.Tensor:
        """Activated density [nx, ny, nz] at every point (xs[i], ys[j], zs[k]) of an axis-aligned lattice."""
        return self.density(self.raw_lattice(scene_code, xs, ys, zs))

    def raw_lattice(
        self, scene_code: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, zs: torch.Tensor
    ) -> torch.Tensor:
        """Raw density [nx, ny, nz] at every point (xs[i], ys[j], zs[k]) of an axis-aligned lattice.

        The numbers `raw` gives at those points (to float rounding), for less. Plane xy is sampled once per
        (i, j) rather than once per point, and likewise xz and yz. And the MLP's first layer, a linear map
        of the three samples side by side, is the sum of a map of each: each plane's samples are mapped
        once, and a point's first activations are three of those summed. Only the rest of the MLP runs per
        point.
        """
        x, y, z = (scale_range(axis, (-self.radius, self.radius), (-1.0, 1.0)) for axis in (xs, ys, zs))
        first, *rest = self.decoder.layers
        weights = first.weight.view(first.out_features, PLANES, -1)
        xy, xz, yz = (
            self._plane(scene_code, index, u, v) @ weights[:, index].T
            for index, (u, v) in enumerate(((x, y), (x, z), (y, z)))
        )
        hidden = xy[:, :, None] + xz[:, None] + yz[None]  # [nx, ny, nz, out]
        if first.bias is not None:
            hidden = hidden + first.bias
        out = nn.Sequential(*rest)(hidden.reshape(-1, first.out_features))
        return out[:, 0].reshape(hidden.shape[:3])

    @staticmethod
    def _plane(scene_code: torch.Tensor, index: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Plane `index` sampled at every (u[i], v[j]), u along its width: features [nu, nv, C]."""
        grid = torch.stack(torch.meshgrid(u, v, indexing="ij"), -1).unsqueeze(0)
        sampled = F.grid_sample(scene_code[index : index + 1], grid, mode="bilinear", align_corners=False)
        return sampled[0].permute(1, 2, 0)
