"""A Replicate model's output as a mesh in our frame: where the mesh file is, what it is, what it holds.

Models answer with a URL, a list or a dict of them; the file may be a GLB (with vertex colours or a texture),
an OBJ, a PLY or an STL. Whatever it is, the result is one vertex-coloured mesh in our frame, ready for
`sidecar.glb.mesh_to_glb`, so that it reaches Blender exactly as a local result does.
"""

from __future__ import annotations

import io
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import trimesh

from ..jobs import JobFailed

# What trimesh reads, by the URL's suffix or the data: URI's media type.
MESH_SUFFIXES = {".glb": "glb", ".obj": "obj", ".ply": "ply", ".stl": "stl"}
MEDIA_TYPES = {
    "model/gltf-binary": "glb",
    "model/obj": "obj",
    "text/plain": "obj",  # how Python's mimetypes, and so Cog, labels an .obj file
    "application/ply": "ply",
    "model/stl": "stl",
    "application/sla": "stl",
}


def describe(url: str) -> str:
    """A URL for a message: data: URIs carry the whole file, so they are only named."""
    return "an inline data: file" if url.startswith("data:") else url


def mesh_type(url: str) -> str | None:
    """The mesh format a URL names, or None when it does not look like a mesh."""
    if url.startswith("data:"):
        media_type = url[len("data:") :].split(",", 1)[0].split(";", 1)[0]
        return MEDIA_TYPES.get(media_type.lower())
    return MESH_SUFFIXES.get(PurePosixPath(urlsplit(url).path).suffix.lower())


def find_mesh(output: Any, path: tuple[str, ...], model: str) -> Any:
    """The mesh file in a prediction's output: where `path` leads, and among a list or dict of files found
    there, the first that is a mesh."""
    found = output
    for key in path:
        try:
            found = found[int(key)] if isinstance(found, list) else found[key]
        except (KeyError, IndexError, ValueError, TypeError):
            raise JobFailed(
                "output_unusable",
                f"The output of {model} has no {'.'.join(path)}; its model entry may need another "
                f'"output" path. The output had: {_shape(output)}.',
            ) from None
    candidates = list(found.values()) if isinstance(found, dict) else found
    if not isinstance(candidates, list):
        return found
    for candidate in candidates:
        if candidate is not None and mesh_type(str(candidate)) is not None:
            return candidate
    raise JobFailed("output_unusable", f"The output of {model} holds no mesh file: {_shape(found)}.")


def read_mesh(data: bytes, url: str, model: str) -> trimesh.Trimesh:
    """The mesh a file holds, all its parts in one, coloured per vertex (a texture is sampled at them)."""
    file_type = "glb" if data[:4] == b"glTF" else mesh_type(url)
    if file_type is None:
        raise JobFailed(
            "output_unusable",
            f"{model} returned {describe(url)}, which is not a mesh format this sidecar reads "
            f"({', '.join(sorted(set(MESH_SUFFIXES.values())))}).",
        )
    try:
        loaded = trimesh.load(io.BytesIO(data), file_type=file_type, process=False)
    except Exception as exc:  # trimesh's parsers raise whatever their format's reader raises
        raise JobFailed(
            "output_unusable", f"The {file_type.upper()} {model} returned cannot be read ({exc})."
        ) from exc
    parts = loaded.dump() if isinstance(loaded, trimesh.Scene) else [loaded]
    meshes = [
        _vertex_coloured(part) for part in parts if isinstance(part, trimesh.Trimesh) and len(part.faces)
    ]
    if not meshes:
        raise JobFailed("output_unusable", f"The {file_type.upper()} {model} returned holds no triangles.")
    return meshes[0] if len(meshes) == 1 else trimesh.util.concatenate(meshes)


def to_our_frame(mesh: trimesh.Trimesh, frame: np.ndarray) -> trimesh.Trimesh:
    """Turn (or mirror) the mesh into our frame; trimesh reverses the winding of a mirrored one."""
    transform = np.eye(4)
    transform[:3, :3] = frame
    return mesh.apply_transform(transform)


def _vertex_coloured(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    if mesh.visual.kind == "texture":
        mesh.visual = mesh.visual.to_color()
    return mesh


def _shape(output: Any) -> str:
    """What an output holds, for a message: its keys or its length, never the (long) URLs themselves."""
    if isinstance(output, dict):
        return f"a dict of {', '.join(map(str, output)) or 'nothing'}"
    if isinstance(output, list):
        return f"a list of {len(output)}"
    return "nothing" if output is None else f"one {type(output).__name__}"
