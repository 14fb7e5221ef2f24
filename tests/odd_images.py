"""Image files the sidecar must read right or refuse: other pixel modes, EPS, a decompression bomb."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

# A grey ramp across the image: what every mode below should become (as 8-bit grey) after conversion.
RAMP = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))
# An Encapsulated PostScript file: Pillow would hand it to Ghostscript.
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n0 0 moveto 64 64 lineto stroke\nshowpage\n%%EOF\n"


def encoded(image: Image.Image, file_format: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, format=file_format)
    return out.getvalue()


def modes() -> dict[str, bytes]:
    """The ramp in each pixel mode the issue named, as a file of a format that keeps that mode."""
    ramp = RAMP.astype(np.float64)
    palette = Image.fromarray(RAMP).convert("P")
    palette.info["transparency"] = 0  # the palette entry of black: see-through
    return {
        "I;16": encoded(Image.fromarray((ramp * 257).astype(np.uint16))),
        "I": encoded(Image.fromarray((ramp * 257).astype(np.int32)), "TIFF"),
        "F": encoded(Image.fromarray((ramp / 255).astype(np.float32)), "TIFF"),
        "LA": encoded(Image.fromarray(RAMP).convert("LA")),
        "P": encoded(palette),
        "CMYK": encoded(Image.fromarray(RAMP).convert("CMYK"), "TIFF"),
    }


def bomb(width: int = 40_000, height: int = 40_000) -> bytes:
    """A PNG whose header claims far more pixels than any limit, with no pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
