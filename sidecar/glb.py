"""Writing meshes as GLB the way Blender and other glTF readers expect them."""

from __future__ import annotations

import numpy as np
import trimesh
from trimesh.exchange.gltf import export_glb

from . import __version__

# trimesh writes COLOR_0 as 8-bit values. glTF defines COLOR_0 as linear, and 8 bits of linear
# light are too coarse in the darks (an sRGB error of several levels), so the linear colours go out
# as float32 under a custom name that is renamed to COLOR_0 once trimesh has laid out the file.
_LINEAR_COLOR = "_LINEAR_COLOR"


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    srgb = np.asarray(srgb, dtype=np.float64)
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def mesh_to_glb(mesh: trimesh.Trimesh) -> bytes:
    """A GLB of the mesh with smooth normals and, if it has vertex colours, a linear COLOR_0.

    Vertex colours in trimesh are sRGB bytes, as image colours are; glTF wants linear values.
    """
    plain = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    if mesh.visual.kind == "vertex":
        srgb = mesh.visual.vertex_colors[:, :3] / 255.0
        plain.vertex_attributes[_LINEAR_COLOR] = srgb_to_linear(srgb).astype(np.float32)

    def finish_tree(tree: dict) -> None:
        tree["asset"]["generator"] = f"TripoSR for Blender sidecar {__version__}"
        for gltf_mesh in tree.get("meshes", []):
            for primitive in gltf_mesh["primitives"]:
                attributes = primitive["attributes"]
                if _LINEAR_COLOR in attributes:
                    attributes["COLOR_0"] = attributes.pop(_LINEAR_COLOR)

    return export_glb(plain, include_normals=True, tree_postprocessor=finish_tree)
