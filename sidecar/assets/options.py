"""What a job asks of the stages that turn a surface into an asset, and the ranges each option takes."""

from __future__ import annotations

from dataclasses import dataclass

TEXTURE_SIZES = (512, 1024, 2048, 4096)
# The stages these options turn on, in the order they run after a backend has made its surface; "colour"
# gives vertex colours, "unwrap" and "bake" a texture instead.
ASSET_STAGES = ("cleanup", "decimate", "colour", "unwrap", "bake", "place")
DEFAULT_MIN_PIECE = 0.02
MIN_FACES = 100  # a simplification target below this is no longer the object
# A texture carries the detail, and unwrapping takes minutes beyond about 10^5 faces (3 s at 50k, 22 s at
# 100k here): a textured model that names no face count is simplified to this many.
TEXTURED_FACES = 50_000


@dataclass(frozen=True)
class AssetOptions:
    cleanup: bool = True  # drop floating pieces smaller than `min_piece` of the largest one's area
    min_piece: float = DEFAULT_MIN_PIECE
    smooth: int = 0  # iterations of volume-preserving (Taubin) smoothing; 0: none
    faces: int = 0  # triangles to simplify to; 0: keep the full surface
    texture: int = 0  # texture size in texels (one of TEXTURE_SIZES); 0: vertex colours
    ground: bool = False  # origin at the bottom centre, so the model stands on the ground
    height: float = 0.0  # metres from bottom to top; 0: the model's own size

    @property
    def target_faces(self) -> int:
        """The face count the surface is simplified to; 0: not simplified."""
        return self.faces or (TEXTURED_FACES if self.texture else 0)

    def stages(self, coloured: bool = False) -> tuple[str, ...]:
        """The asset stages a job with these options runs, on a surface made without colours (the local
        model's) or with them (a cloud model's, which keeps them unless it is simplified)."""
        chosen = ["cleanup"] if self.cleanup or self.smooth else []
        chosen += ["decimate"] if self.target_faces else []
        if self.texture:
            chosen += ["unwrap", "bake"]
        elif not coloured or self.target_faces:
            chosen.append("colour")
        chosen += ["place"] if self.ground or self.height else []
        return tuple(chosen)
