"""A GLB read back for the tests, accessor by accessor, independently of the writer and of trimesh."""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image

COMPONENTS = {5121: np.uint8, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


@dataclass
class Glb:
    tree: dict
    binary: bytes

    def accessor(self, index: int) -> np.ndarray:
        """An accessor's values; normalised integers as floats in 0..1, as glTF defines them."""
        accessor = self.tree["accessors"][index]
        view = self.tree["bufferViews"][accessor["bufferView"]]
        dtype = np.dtype(COMPONENTS[accessor["componentType"]])
        width = WIDTHS[accessor["type"]]
        stride = view.get("byteStride", dtype.itemsize * width)
        start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
        rows = np.ndarray(
            (accessor["count"], width), dtype, self.binary, start, (stride, dtype.itemsize)
        ).copy()
        if accessor.get("normalized"):
            return rows / np.iinfo(dtype).max
        return rows[:, 0] if width == 1 else rows

    def attribute(self, name: str) -> np.ndarray | None:
        (mesh,) = self.tree["meshes"]
        (primitive,) = mesh["primitives"]
        index = primitive["attributes"].get(name)
        return None if index is None else self.accessor(index)

    @property
    def faces(self) -> np.ndarray:
        (primitive,) = self.tree["meshes"][0]["primitives"]
        return self.accessor(primitive["indices"]).reshape(-1, 3).astype(np.int64)

    @property
    def texture(self) -> np.ndarray | None:
        """The base colour texture as sRGB bytes [H, W, 3], or None."""
        if not self.tree.get("images"):
            return None
        view = self.tree["bufferViews"][self.tree["images"][0]["bufferView"]]
        start = view.get("byteOffset", 0)
        data = self.binary[start : start + view["byteLength"]]
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def read_glb(data: bytes) -> Glb:
    magic, version, length = struct.unpack_from("<III", data, 0)
    assert (magic, version, length) == (0x46546C67, 2, len(data)), "not a GLB 2.0 of this length"
    json_length, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A
    tree = json.loads(data[20 : 20 + json_length])
    binary_length, binary_type = struct.unpack_from("<II", data, 20 + json_length)
    assert binary_type == 0x004E4942
    start = 28 + json_length
    return Glb(tree, data[start : start + binary_length])
