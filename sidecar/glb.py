"""Surfaces as GLB files, written buffer by buffer, the way Blender and other glTF readers expect them.

One node, one mesh, one primitive: positions, smooth normals and indices, then either linear vertex colours
(COLOR_0 as normalised 16-bit: 8 bits of linear light are too coarse in the darks, float32 needlessly fine)
or texture coordinates and one PBR material whose base colour is the sRGB texture, embedded as a PNG.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterator

import numpy as np
from PIL import Image
from scipy.sparse import csc_matrix

from . import __version__
from .assets.surface import Surface

# glTF's numbers for what a buffer view holds and how an accessor reads it.
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
UNSIGNED_SHORT, UNSIGNED_INT, FLOAT = 5123, 5125, 5126
COMPONENT_TYPES = {
    np.dtype(np.uint16): UNSIGNED_SHORT,
    np.dtype(np.uint32): UNSIGNED_INT,
    np.dtype(np.float32): FLOAT,
}
LINEAR, LINEAR_MIPMAP_LINEAR, CLAMP_TO_EDGE = 9729, 9987, 33071
GLB_MAGIC, JSON_CHUNK, BIN_CHUNK = 0x46546C67, 0x4E4F534A, 0x004E4942
DEFAULT_MODEL_NAME = "TripoSR"
# A surface that is not metal and not polished; TripoSR predicts no material properties beyond colour.
ROUGHNESS = 0.8
# zlib effort for the texture: 6 (Pillow's default) costs several times 1's time for a few percent of size.
PNG_COMPRESSION = 1
# Rows per block in the per-vertex and per-face arithmetic: a block's temporaries stay in cache.
ROW_BLOCK = 1 << 16


def surface_to_glb(surface: Surface, name: str = DEFAULT_MODEL_NAME) -> bytes:
    """The surface as a GLB whose node, mesh and (with a texture) material are named `name`."""
    writer = _BufferWriter()
    vertices = surface.vertices.astype(np.float32, copy=False)
    attributes = {
        "POSITION": writer.accessor(vertices, "VEC3", ARRAY_BUFFER, bounds=True),
        "NORMAL": writer.accessor(
            vertex_normals(vertices, surface.faces, weld=surface.textured), "VEC3", ARRAY_BUFFER
        ),
    }
    primitive: dict = {"attributes": attributes, "mode": 4}
    if surface.colours is not None:
        # RGBA, opaque: a vertex attribute's elements are 4-byte aligned, so RGB would take as much room
        colours = np.full((len(vertices), 4), 65535, dtype=np.uint16)
        for rows in row_blocks(len(vertices)):
            colours[rows, :3] = np.round(np.clip(surface.colours[rows], 0.0, 1.0) * 65535.0)
        attributes["COLOR_0"] = writer.accessor(colours, "VEC4", ARRAY_BUFFER, normalized=True)
    primitive["indices"] = writer.accessor(
        gltf_indices(surface.faces, len(vertices)), "SCALAR", ELEMENT_ARRAY_BUFFER
    )
    tree: dict = {
        "asset": {"version": "2.0", "generator": f"TripoSR for Blender sidecar {__version__}"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"name": name, "mesh": 0}],
        "meshes": [{"name": name, "primitives": [primitive]}],
    }
    if surface.textured:
        attributes["TEXCOORD_0"] = writer.accessor(surface.uv.astype(np.float32), "VEC2", ARRAY_BUFFER)
        primitive["material"] = 0
        tree["images"] = [
            {"name": name, "bufferView": writer.view(png(surface.texture)), "mimeType": "image/png"}
        ]
        tree["samplers"] = [
            {
                "magFilter": LINEAR,
                "minFilter": LINEAR_MIPMAP_LINEAR,
                "wrapS": CLAMP_TO_EDGE,
                "wrapT": CLAMP_TO_EDGE,
            }
        ]
        tree["textures"] = [{"sampler": 0, "source": 0}]
        tree["materials"] = [
            {
                "name": name,
                "pbrMetallicRoughness": {
                    "baseColorTexture": {"index": 0},
                    "metallicFactor": 0.0,
                    "roughnessFactor": ROUGHNESS,
                },
            }
        ]
    tree["accessors"] = writer.accessors
    tree["bufferViews"] = writer.views
    tree["buffers"] = [{"byteLength": writer.length}]
    return _glb(tree, writer.chunks)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, weld: bool = False) -> np.ndarray:
    """Unit normals at the vertices: their faces' normals weighted by area; a vertex in no face points up.

    `weld`: copies of one point (a UV seam splits vertices) share the normal of all their faces, so that no
    crease shows along the seam.
    """
    if weld:  # one key per position: the 12 bytes of its float32 coordinates (far quicker than unique rows)
        keys = np.ascontiguousarray(vertices, dtype=np.float32).view(np.dtype((np.void, 12))).reshape(-1)
        _, point, owner = np.unique(keys, return_index=True, return_inverse=True)
        owners, count = owner.reshape(-1)[faces], len(point)
    else:
        owners, count = faces, len(vertices)
    weighted = face_cross_products(vertices, faces)
    # each face's column holds its three corners: the product adds every face's normal to its corners
    incidence = csc_matrix(
        (np.ones(faces.size, dtype=np.float32), owners.reshape(-1), np.arange(0, faces.size + 1, 3)),
        shape=(count, len(faces)),
    )
    normals = incidence @ weighted
    for rows in row_blocks(len(normals)):
        block = normals[rows]
        length = np.sqrt(np.einsum("ij,ij->i", block, block))
        alone = length == 0
        length[alone] = 1.0
        block /= length[:, None]
        block[alone] = (0.0, 1.0, 0.0)
    return normals[owner.reshape(-1)] if weld else normals


def face_cross_products(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Each face's (b - a) x (c - a): its normal, as long as twice its area.

    Worked one coordinate at a time on blocks of faces: gathers from contiguous columns by ready-made
    indices, with temporaries small enough to stay in cache, are several times quicker than rows through
    np.cross.
    """
    columns = np.ascontiguousarray(vertices.T)
    crossed = np.empty((len(faces), 3), dtype=vertices.dtype)
    for rows in row_blocks(len(faces)):
        a, b, c = np.ascontiguousarray(faces[rows].T, dtype=np.intp)
        origin = [column.take(a) for column in columns]
        x, y, z = (
            (column.take(b) - at, column.take(c) - at) for column, at in zip(columns, origin, strict=True)
        )
        block = crossed[rows]
        block[:, 0] = y[0] * z[1] - z[0] * y[1]
        block[:, 1] = z[0] * x[1] - x[0] * z[1]
        block[:, 2] = x[0] * y[1] - y[0] * x[1]
    return crossed


def gltf_indices(faces: np.ndarray, vertex_count: int) -> np.ndarray:
    """The faces as one run of glTF indices: 16-bit where they fit, else 32-bit (int32 faces are read as
    uint32 in place, indices being never negative)."""
    faces = np.ascontiguousarray(faces).reshape(-1)
    if vertex_count <= 0xFFFF:
        return faces.astype(np.uint16)
    return faces.view(np.uint32) if faces.dtype == np.int32 else faces.astype(np.uint32)


def row_blocks(count: int) -> Iterator[slice]:
    """Slices of ROW_BLOCK rows covering `count`."""
    for start in range(0, count, ROW_BLOCK):
        yield slice(start, start + ROW_BLOCK)


def png(texture: np.ndarray) -> bytes:
    stream = io.BytesIO()
    Image.fromarray(texture, "RGB").save(stream, "PNG", compress_level=PNG_COMPRESSION)
    return stream.getvalue()


class _BufferWriter:
    """Lays out the binary chunk: each buffer view 4-byte aligned, with the accessors that read it."""

    def __init__(self) -> None:
        self.chunks: list[bytes | memoryview] = []
        self.length = 0
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def view(self, data: bytes | memoryview, target: int | None = None) -> int:
        self.chunks.append(b"\0" * (-self.length % 4))
        self.length += -self.length % 4
        view = {"buffer": 0, "byteOffset": self.length, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        self.chunks.append(data)
        self.length += len(data)
        return len(self.views) - 1

    def accessor(
        self, values: np.ndarray, kind: str, target: int, bounds: bool = False, normalized: bool = False
    ) -> int:
        values = np.ascontiguousarray(values)
        accessor = {
            "bufferView": self.view(memoryview(values).cast("B"), target),
            "componentType": COMPONENT_TYPES[values.dtype],
            "count": len(values),
            "type": kind,
        }
        if normalized:
            accessor["normalized"] = True
        if bounds:  # per component, reduced along contiguous rows: many times quicker than down columns
            components = np.ascontiguousarray(values.T)
            accessor["min"] = components.min(1).tolist()
            accessor["max"] = components.max(1).tolist()
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def _glb(tree: dict, chunks: list[bytes | memoryview]) -> bytes:
    text = json.dumps(tree, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    binary_length = sum(chunk.nbytes if isinstance(chunk, memoryview) else len(chunk) for chunk in chunks)
    padding = b"\0" * (-binary_length % 4)
    binary_length += len(padding)
    total = 12 + 8 + len(text) + 8 + binary_length
    return b"".join(
        [
            struct.pack("<III", GLB_MAGIC, 2, total),
            struct.pack("<II", len(text), JSON_CHUNK),
            text,
            struct.pack("<II", binary_length, BIN_CHUNK),
            *chunks,
            padding,
        ]
    )
