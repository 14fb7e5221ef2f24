"""From image files to the conditioning image: foreground finding, cropping, refusals."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from odd_images import EPS, RAMP, bomb, modes
from PIL import Image

from sidecar.triposr.errors import ImageError
from sidecar.triposr.preprocess import as_rgb, open_image, prepare_image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def square_on(background: tuple[int, int, int], size: int = 100) -> Image.Image:
    """A red 40x20 block at rows 30-49, columns 20-59, on a plain background."""
    pixels = np.empty((size, size, 3), dtype=np.uint8)
    pixels[:] = background
    pixels[30:50, 20:60] = (200, 30, 30)
    return Image.fromarray(pixels)


def test_alpha_marks_the_object_and_the_rest_becomes_grey(tiny_weights):
    image = Image.open(tiny_weights / "input.png")
    pixels = prepare_image(image, foreground_ratio=0.85)
    assert pixels.shape == (194, 194, 3)
    # the padding around the object is the 0.5 grey, truncated to 127
    assert (pixels[0, 0] == 127).all() and (pixels[-1, -1] == 127).all()


def test_without_rembg_a_plain_border_is_taken_as_background(caplog):
    image = square_on((255, 255, 255))
    with caplog.at_level(logging.WARNING):
        pixels = prepare_image(image, foreground_ratio=1.0)
    assert "rembg is not installed" in caplog.text
    # cropped to the block (minus the official crop's last row and column), padded to a square
    assert pixels.shape == (39, 39, 3)
    assert (pixels[20, 20] == (200, 30, 30)).all()
    assert (pixels[0, 0] == 127).all()


def test_a_busy_border_is_kept_whole_with_a_warning(caplog):
    noise = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    with caplog.at_level(logging.WARNING):
        pixels = prepare_image(Image.fromarray(noise), foreground_ratio=1.0)
    assert "not one plain colour" in caplog.text
    assert pixels.shape == (63, 63, 3)


def test_no_remove_bg_uses_an_opaque_image_as_it_is():
    image = square_on((10, 200, 10))
    np.testing.assert_array_equal(prepare_image(image, remove_background=False), np.asarray(image))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 10, "unrecognized"),
        (np.random.default_rng(1).bytes(4096), "unrecognized"),
    ],
)
def test_undecodable_bytes_are_refused_with_a_reason(data, reason):
    with pytest.raises(ImageError) as caught:
        open_image(data)
    assert caught.value.reason == reason


def test_a_truncated_file_is_called_damaged(tiny_weights):
    data = (tiny_weights / "input.png").read_bytes()
    with pytest.raises(ImageError, match="damaged") as caught:
        open_image(data[: len(data) // 2])
    assert caught.value.reason == "damaged"


def test_images_over_the_pixel_limit_are_refused_before_decoding():
    with pytest.raises(ImageError, match="more than the limit") as caught:
        open_image(png_bytes(Image.new("RGB", (300, 200))), max_pixels=50_000)
    assert caught.value.reason == "too_large"


def test_missing_files_and_empty_foregrounds_are_refused(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        open_image(tmp_path / "nothing.png")
    transparent = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    with pytest.raises(ImageError, match="no foreground"):
        prepare_image(transparent)
    with pytest.raises(ImageError, match="foreground ratio"):
        prepare_image(square_on((255, 255, 255)), foreground_ratio=0.0)


@pytest.mark.parametrize("mode", modes())
def test_every_pixel_mode_becomes_the_8_bit_image_it_shows(mode):
    image = open_image(modes()[mode])
    assert image.mode == mode
    converted = np.asarray(as_rgb(image))
    np.testing.assert_array_equal(converted[..., :3], np.repeat(RAMP[..., None], 3, axis=2))
    if mode in ("LA", "P"):  # their transparency is kept: LA's alpha, P's see-through entry (black)
        assert converted.shape[2] == 4
        np.testing.assert_array_equal(converted[..., 3], 255 if mode == "LA" else np.where(RAMP == 0, 0, 255))
    else:
        assert converted.shape[2] == 3


def test_only_the_allowed_formats_are_decoded_and_a_bomb_is_too_large():
    with pytest.raises(ImageError, match="PNG, JPEG, WEBP, BMP or TIFF") as eps:
        open_image(EPS)
    assert eps.value.reason == "unrecognized"
    with pytest.raises(ImageError, match="more pixels than the limit") as claimed:
        open_image(bomb())
    assert claimed.value.reason == "too_large"


def test_a_plain_opaque_image_says_no_object_stands_out():
    with pytest.raises(ImageError, match="no object could be told apart") as caught:
        prepare_image(Image.new("RGB", (64, 64), (240, 240, 240)))
    assert caught.value.reason == "no_foreground"
