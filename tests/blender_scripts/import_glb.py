"""Import GLBs into an empty scene; save, per file, what an artist would see of the result.

Arguments: pairs of GLB path and output .npz path. Each .npz holds the mesh's corner positions in world
space and the corner colours as Blender shows them (sRGB).
"""

import sys

import bpy
import numpy as np
from harness import run


def import_one(glb: str, out: str) -> dict:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=glb)
    meshes = [obj for obj in bpy.data.objects if obj.type == "MESH"]
    (obj,) = meshes
    mesh = obj.data
    (attribute,) = mesh.color_attributes
    vertices = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", vertices)
    world = np.array(obj.matrix_world, dtype=np.float64)
    vertices = vertices.reshape(-1, 3) @ world[:3, :3].T + world[:3, 3]
    corner_vertex = np.empty(len(mesh.loops), dtype=np.int64)
    mesh.loops.foreach_get("vertex_index", corner_vertex)
    colors = np.empty(len(attribute.data) * 4, dtype=np.float32)
    attribute.data.foreach_get("color_srgb", colors)
    colors = colors.reshape(-1, 4)
    if attribute.domain == "POINT":
        colors = colors[corner_vertex]
    np.savez(out, corner_positions=vertices[corner_vertex], corner_srgb=colors[:, :3])
    return {"vertices": len(mesh.vertices), "faces": len(mesh.polygons), "domain": attribute.domain}


def main() -> dict:
    paths = sys.argv[1:]
    return {glb: import_one(glb, out) for glb, out in zip(paths[::2], paths[1::2], strict=True)}


run(main)
