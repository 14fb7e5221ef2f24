"""sRGB and linear light: images and textures hold sRGB; glTF's COLOR_0 and every bake work in linear."""

from __future__ import annotations

import numpy as np


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 decoding of values in 0..1, in float32 when they come so (a model's millions of vertex
    colours: a few times quicker, and 2e-7 from float64, far below what 16 bits hold), else float64."""
    srgb = np.asarray(srgb)
    srgb = srgb.astype(np.result_type(srgb.dtype, np.float32), copy=False)
    linear = np.add(srgb, 0.055, out=np.empty_like(srgb))
    linear /= 1.055
    np.power(linear, 2.4, out=linear)
    dark = srgb <= 0.04045
    linear[dark] = srgb[dark] / 12.92
    return linear


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 encoding of values in 0..1 (clipped there first)."""
    linear = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
