"""From a user's image file to the uint8 RGB image TripoSR is conditioned on.

Only the formats of IMAGE_FORMATS are decoded: the bytes may come from the network, and Pillow's other
plugins include EPS, which runs Ghostscript on them. Every pixel mode becomes 8-bit RGB or RGBA by what its
numbers mean: 16-bit and float greys are scaled, not clipped; CMYK (Adobe's inverted kind too) is converted
as Pillow reads it. The steps after that, and their arithmetic, follow the official `run.py`: find the
foreground (alpha when the image has it, else background removal), crop to it, pad to a square whose side
gives the foreground ratio, composite on 50 % grey and truncate to uint8.
"""

from __future__ import annotations

import functools
import io
import logging
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageError

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 50_000_000
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")
# Pixel modes whose numbers run past 255: 16-bit greys (and "I", which is how 16-bit files often open),
# and floats in 0..1.
WIDE_GREY_SCALES = {"I;16": 257.0, "I;16L": 257.0, "I;16B": 257.0, "I;16N": 257.0, "I": 257.0, "F": 1 / 255}
# Border pixels this close (per channel, 0-255) to the border's typical colour count as background
# when rembg is missing; most of the border must be that colour for the fallback to apply.
BORDER_TOLERANCE = 24
PLAIN_BORDER_SHARE = 0.9


def open_image(source: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image file, or its bytes, completely; refuse what is not an image or is too big."""
    if isinstance(source, bytes):
        name, data = "The image", source
    else:
        name = str(source)
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError as exc:
            raise ImageError(f"{name} does not exist.", "missing") from exc
        except OSError as exc:
            raise ImageError(f"{name} cannot be read: {exc.strerror}.", "missing") from exc
    if not data:
        raise ImageError(f"{name} is empty (0 bytes).", "empty")
    try:
        with warnings.catch_warnings():
            # Our pixel cap is what counts, and the message is ours to give.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
            _check_size(name, *image.size, max_pixels)
            image.load()
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:  # far beyond Pillow's own limit, found before ours is asked
        raise ImageError(
            f"{name} claims more pixels than the limit of {max_pixels:,} ({exc}).", "too_large"
        ) from exc
    except UnidentifiedImageError as exc:
        formats = ", ".join(IMAGE_FORMATS[:-1]) + f" or {IMAGE_FORMATS[-1]}"
        raise ImageError(
            f"{name} is not in an image format the sidecar reads ({formats}).", "unrecognized"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:  # PIL's ways of saying the data is damaged
        raise ImageError(f"{name} could not be decoded; the file looks damaged ({exc}).", "damaged") from exc
    return image


def _check_size(name: str, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageError(
            f"{name} is {width}x{height} pixels, more than the limit of {max_pixels:,}; scale it down first.",
            "too_large",
        )


def as_rgb(image: Image.Image) -> Image.Image:
    """The image in 8-bit RGB, or RGBA when it has transparency, whatever mode its file had."""
    if image.mode in WIDE_GREY_SCALES:
        grey = np.asarray(image, dtype=np.float64) / WIDE_GREY_SCALES[image.mode]
        return Image.fromarray(np.clip(np.round(grey), 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode in ("RGBA", "LA", "La", "PA", "RGBa") or "transparency" in image.info:
        return image.convert("RGBA")
    return image.convert("RGB")


def prepare_image(
    image: Image.Image, foreground_ratio: float = 0.85, remove_background: bool = True
) -> np.ndarray:
    """The conditioning image: uint8 HxWx3.

    Alpha, when the image has any transparency, marks the foreground. Otherwise, with
    `remove_background`, the background is removed (rembg, or a plain-border fallback); without it,
    the image is used whole, as the official `--no-remove-bg` does.
    """
    if not 0.0 < foreground_ratio <= 1.0:
        raise ImageError(f"The foreground ratio must be in (0, 1], not {foreground_ratio}.", "bad_parameter")
    image = as_rgb(image)
    if has_transparency(image):
        rgba = image
    elif remove_background:
        rgba = cut_out_background(image)
        if rgba.getchannel("A").getextrema()[1] == 0:
            raise ImageError(
                "The image has no transparency, and no object could be told apart from its background: it "
                "looks like one plain colour. Give an image whose background is transparent, or one where "
                "the object stands out from a plain background.",
                "no_foreground",
            )
    else:
        return np.asarray(image.convert("RGB")).copy()
    return composite_on_grey(resize_foreground(np.asarray(rgba), foreground_ratio))


def has_transparency(image: Image.Image) -> bool:
    """Whether an image (as `as_rgb` makes it) has a pixel that is not opaque."""
    return image.mode == "RGBA" and image.getchannel("A").getextrema()[0] < 255


def cut_out_background(image: Image.Image) -> Image.Image:
    """RGBA with the background transparent: rembg when installed, else a plain-border flood fill."""
    try:
        import rembg
    except ImportError:
        log.warning(
            "rembg is not installed, so the background is taken to be the plain colour around the "
            "border. For photos, install the 'rembg' extra or give an image with transparency."
        )
        return flood_fill_background(image)
    return rembg.remove(image.convert("RGB"), session=_rembg_session())


@functools.cache
def _rembg_session():
    """One rembg session per process: creating it loads its network."""
    import rembg

    return rembg.new_session()


def flood_fill_background(image: Image.Image) -> Image.Image:
    """Make transparent the region of the border's colour that touches the border.

    When the border is not one plain colour, the image is returned opaque and used whole.
    """
    from scipy import ndimage

    rgb = np.asarray(image.convert("RGB")).astype(np.int16)
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    colour = np.median(border, axis=0)
    near = np.abs(rgb - colour).max(axis=-1) <= BORDER_TOLERANCE
    border_near = np.concatenate([near[0], near[-1], near[:, 0], near[:, -1]])
    rgba = image.convert("RGBA")
    if border_near.mean() < PLAIN_BORDER_SHARE:
        log.warning("The image's border is not one plain colour; using the whole image.")
        return rgba
    regions, _ = ndimage.label(near)
    edge_labels = np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))
    background = np.isin(regions, edge_labels[edge_labels > 0])
    alpha = np.where(background, 0, 255).astype(np.uint8)
    rgba.putalpha(Image.fromarray(alpha))
    return rgba


def resize_foreground(rgba: np.ndarray, ratio: float) -> np.ndarray:
    """Crop to the alpha bounding box, pad to a square, then pad so the object fills `ratio` of it.

    Like the official code, the crop excludes the box's last row and column.
    """
    rows, cols = np.nonzero(rgba[..., 3] > 0)
    if rows.size == 0:
        raise ImageError("The image has no foreground: every pixel is transparent.", "no_foreground")
    foreground = rgba[rows.min() : rows.max(), cols.min() : cols.max()]
    if foreground.size == 0:
        raise ImageError(
            "The image's foreground is a single line of pixels; there is no object.", "no_foreground"
        )
    square = _pad_centred(foreground, max(foreground.shape[:2]))
    return _pad_centred(square, int(square.shape[0] / ratio))


def _pad_centred(image: np.ndarray, size: int) -> np.ndarray:
    height, width = image.shape[:2]
    top, left = (size - height) // 2, (size - width) // 2
    padding = ((top, size - height - top), (left, size - width - left), (0, 0))
    return np.pad(image, padding, mode="constant", constant_values=0)


def composite_on_grey(rgba: np.ndarray) -> np.ndarray:
    """Blend on 0.5 grey in float32 and truncate to uint8, exactly as the official code."""
    image = rgba.astype(np.float32) / 255.0
    alpha = image[:, :, 3:4]
    image = image[:, :, :3] * alpha + (1 - alpha) * 0.5
    return (image * 255.0).astype(np.uint8)
