"""A Replicate model's output as a surface in our frame: where the mesh file is, what it is, what it holds.

Models answer with a URL, a list or a dict of them; the file may be a GLB (with vertex colours or a texture),
an OBJ, a PLY or an STL. Whatever it is, the result is one surface in our frame, with linear vertex colours
(the model's entry says whether its files hold sRGB or linear ones) or its texture kept, ready for the same
asset stages and GLB writer as a local result.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import trimesh

from ..assets.colour import srgb_to_linear
from ..assets.surface import Surface
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


def read_surface(
    data: bytes, url: str, model: str, frame: np.ndarray, vertex_colours: str = "srgb"
) -> Surface:
    """The surface a file holds, all its parts in one, turned (or mirrored) by `frame` into ours.

    A single textured part keeps its texture; several parts are coloured per vertex (their textures sampled
    at the vertices), as they could not share one image. `vertex_colours` says what the file's vertex colours
    hold: "srgb" bytes (what trimesh writes) or "linear" light (what glTF's COLOR_0 is by its specification).
    """
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
    meshes = [part for part in parts if isinstance(part, trimesh.Trimesh) and len(part.faces)]
    if not meshes:
        raise JobFailed("output_unusable", f"The {file_type.upper()} {model} returned holds no triangles.")
    texture = _texture(meshes[0]) if len(meshes) == 1 else None
    if texture is not None:
        uv = np.asarray(meshes[0].visual.uv, dtype=np.float32)
        surface = Surface(meshes[0].vertices, meshes[0].faces, uv=_flip_v(uv), texture=texture)
    else:
        meshes = [_vertex_coloured(mesh) for mesh in meshes]
        mesh = meshes[0] if len(meshes) == 1 else trimesh.util.concatenate(meshes)
        surface = Surface(mesh.vertices, mesh.faces, colours=_linear_vertex_colours(mesh, vertex_colours))
    return _turned(surface, frame)


def _turned(surface: Surface, frame: np.ndarray) -> Surface:
    """The surface turned (or mirrored) into our frame; a mirror reverses the faces so they still face out."""
    faces = surface.faces[:, ::-1] if np.linalg.det(frame) < 0 else surface.faces
    vertices = (surface.vertices.astype(np.float64) @ frame.T).astype(np.float32)
    return replace(surface, vertices=vertices, faces=np.ascontiguousarray(faces, dtype=np.int64))


def _texture(mesh: trimesh.Trimesh) -> np.ndarray | None:
    """The base colour image of a textured mesh (sRGB, RGB bytes), or None."""
    if mesh.visual.kind != "texture" or mesh.visual.uv is None:
        return None
    material = mesh.visual.material
    image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
    return None if image is None else np.asarray(image.convert("RGB"))


def _flip_v(uv: np.ndarray) -> np.ndarray:
    """trimesh's texture coordinates count v up from the image's bottom; glTF's count down from its top."""
    return np.column_stack([uv[:, 0], 1.0 - uv[:, 1]]).astype(np.float32)


def _vertex_coloured(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    if mesh.visual.kind == "texture":
        mesh.visual = mesh.visual.to_color()
    return mesh


def _linear_vertex_colours(mesh: trimesh.Trimesh, colour_space: str) -> np.ndarray:
    """The mesh's vertex colours, which trimesh holds as bytes whatever the file held, as linear floats (its
    plain grey for a mesh with none)."""
    colours = mesh.visual.vertex_colors[:, :3] / 255.0
    return (srgb_to_linear(colours) if colour_space == "srgb" else colours).astype(np.float32)


def _shape(output: Any) -> str:
    """What an output holds, for a message: its keys or its length, never the (long) URLs themselves."""
    if isinstance(output, dict):
        return f"a dict of {', '.join(map(str, output)) or 'nothing'}"
    if isinstance(output, list):
        return f"a list of {len(output)}"
    return "nothing" if output is None else f"one {type(output).__name__}"
