"""A surface on its way to becoming an asset: geometry, and how it is coloured.

Every backend's mesh becomes one of these in our frame: glTF's, y up, the side seen in the image toward +z,
faces wound counter-clockwise seen from outside. Units are the model's own until placement scales them to
metres. Colours are linear RGB, as glTF's COLOR_0; a texture is sRGB, as glTF's baseColorTexture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

# Linear RGB in 0..1, float32 [N, 3], at points float [N, 3] of a surface's frame: what a bake samples.
ColourSource = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Surface:
    vertices: np.ndarray  # float32 [V, 3]
    faces: np.ndarray  # int64 [F, 3]
    colours: np.ndarray | None = None  # linear RGB float32 [V, 3], or None
    uv: np.ndarray | None = None  # float32 [V, 2] in glTF's convention: (0, 0) is the image's top left
    texture: np.ndarray | None = None  # sRGB uint8 [H, W, 3], row 0 at the top; only with `uv`

    def __post_init__(self) -> None:
        if (self.uv is None) != (self.texture is None):
            raise ValueError("a surface has both texture coordinates and a texture, or neither")
        # the dtypes above, whatever a backend's reader gave (frozen: set through object)
        for name, dtype in (
            ("vertices", np.float32),
            ("faces", np.int64),
            ("colours", np.float32),
            ("uv", np.float32),
        ):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, np.ascontiguousarray(value, dtype=dtype))

    @property
    def textured(self) -> bool:
        return self.texture is not None

    def with_geometry(self, vertices: np.ndarray, faces: np.ndarray) -> Surface:
        """The same surface with new geometry, which no longer fits the old colours or coordinates."""
        return Surface(vertices, faces)

    def subset(self, vertex_index: np.ndarray, faces: np.ndarray) -> Surface:
        """Some of the vertices (`vertex_index` into the old ones) with their colours and coordinates, and
        faces that index the new vertex list."""

        def pick(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[vertex_index]

        return replace(
            self,
            vertices=self.vertices[vertex_index],
            faces=faces,
            colours=pick(self.colours),
            uv=pick(self.uv),
        )
