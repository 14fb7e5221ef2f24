"""The TripoSR network: image to scene code (triplanes), and a scene code to density and colour.

Attribute names match the official `TSR` module so that its checkpoint loads with `strict=True`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import preprocess as preprocessing
from .config import TripoSRConfig
from .device import cpu_path
from .grid import query_in_chunks
from .mesh import extract_mesh
from .transformer import Transformer1D
from .triplane import NeRFMLP, Triplane1DTokenizer, TriplaneField, TriplaneUpsampleNetwork
from .vit import DINOImageTokenizer

if TYPE_CHECKING:
    import trimesh
    from PIL import Image

# Points evaluated at once. On a CPU the MLP's activations must stay in cache: 16384 points evaluate a third
# faster than 65536 (and as fast as the official 8192); a GPU wants more at once to keep busy.
CPU_CHUNK_SIZE = 16384
DEFAULT_CHUNK_SIZE = 65536
DEFAULT_THRESHOLD = 25.0


class SceneField:
    """One scene code's field: a `FieldQuery` of CPU points, and a lattice evaluation for grids."""

    def __init__(self, field: TriplaneField, scene_code: torch.Tensor):
        self.field = field
        self.scene_code = scene_code

    def __call__(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.field.query(self.scene_code, self._on_device(points))

    def lattice(self, xs: torch.Tensor, ys: torch.Tensor, zs: torch.Tensor) -> torch.Tensor:
        return self.field.lattice(self.scene_code, *map(self._on_device, (xs, ys, zs)))

    def _on_device(self, values: torch.Tensor) -> torch.Tensor:
        return values.to(self.scene_code.device, self.scene_code.dtype)


class TripoSR(nn.Module):
    def __init__(self, config: TripoSRConfig):
        super().__init__()
        self.config = config
        self.image_tokenizer = DINOImageTokenizer(config.vit)
        self.tokenizer = Triplane1DTokenizer(config.plane_size, config.triplane_channels)
        self.backbone = Transformer1D(config.backbone)
        self.post_processor = TriplaneUpsampleNetwork(
            config.upsample_in_channels, config.upsample_out_channels
        )
        self.decoder = NeRFMLP(config.decoder)
        self.field = TriplaneField(self.decoder, config.renderer)

    @property
    def device(self) -> torch.device:
        return self.tokenizer.embeddings.device

    @property
    def radius(self) -> float:
        return self.field.radius

    @property
    def chunk_size(self) -> int:
        """The points this model's device evaluates best at once."""
        return CPU_CHUNK_SIZE if self.device.type == "cpu" else DEFAULT_CHUNK_SIZE

    def use_backbone_dtype(self, dtype: torch.dtype) -> None:
        """Run the backbone, most of the network's work, in `dtype`; the rest stays float32."""
        self.backbone.to(dtype)

    def preprocess(
        self, image: Image.Image, foreground_ratio: float = 0.85, remove_background: bool = True
    ) -> np.ndarray:
        """A PIL image to the uint8 RGB array the network expects (see `preprocess.prepare_image`)."""
        return preprocessing.prepare_image(image, foreground_ratio, remove_background)

    def conditioning_images(self, images: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 images to float [B, 3, S, S] at the conditioning size, on the model's device.

        The antialiased resize runs on the CPU: MPS lacks it in many PyTorch releases.
        """
        batch = [images] if isinstance(images, np.ndarray) and images.ndim == 3 else list(images)
        size = self.config.cond_image_size
        with cpu_path():
            resized = []
            for image in batch:
                pixels = torch.from_numpy(np.ascontiguousarray(image)).float() / 255.0
                pixels = pixels.permute(2, 0, 1).unsqueeze(0)
                resized.append(
                    F.interpolate(pixels, (size, size), mode="bilinear", align_corners=False, antialias=True)
                )
            pixels = torch.cat(resized)
        return pixels.to(self.device, self.tokenizer.embeddings.dtype)

    @torch.no_grad()
    def encode(
        self, images: np.ndarray | Sequence[np.ndarray], progress: Callable[[float], None] | None = None
    ) -> torch.Tensor:
        """uint8 HxWx3 image(s) to scene codes [B, 3, C, H, W]. `progress` hears the share of the backbone
        done before each of its blocks; raising from it stops the encoding there."""
        image_tokens = self.image_tokenizer(self.conditioning_images(images))
        tokens = self.tokenizer(image_tokens.shape[0])
        dtype = self.backbone.proj_in.weight.dtype
        tokens = self.backbone(tokens.to(dtype), image_tokens.to(dtype), progress).float()
        return self.post_processor(self.tokenizer.detokenize(tokens))

    def field_query(self, scene_code: torch.Tensor) -> SceneField:
        """The field of one scene code [3, C, H, W], queried at CPU points or on a lattice of CPU axes."""
        return SceneField(self.field, scene_code)

    def query(
        self, scene_code: torch.Tensor, points: torch.Tensor, chunk_size: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Activated density [N] and colour [N, 3] (CPU) of one scene code at points [N, 3]."""
        return query_in_chunks(self.field_query(scene_code), points, chunk_size or self.chunk_size)

    def extract_mesh(
        self,
        scene_code: torch.Tensor,
        resolution: int = 256,
        threshold: float = DEFAULT_THRESHOLD,
        chunk_size: int | None = None,
        progress: Callable[[float], None] | None = None,
        sparse: bool = True,
        coarse_resolution: int | None = None,
    ) -> trimesh.Trimesh:
        """The isosurface of one scene code as a vertex-coloured mesh in glTF's frame.

        `sparse` evaluates the field only near the surface; `coarse_resolution` sets the grid that
        finds it (see `isosurface.py` for what that grid can miss).
        """
        query = self.field_query(scene_code)
        return extract_mesh(
            query,
            self.radius,
            resolution,
            threshold,
            chunk_size or self.chunk_size,
            progress,
            sparse,
            coarse_resolution,
        )
