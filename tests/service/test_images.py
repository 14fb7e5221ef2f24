"""Images as a client sends them: only the allowed formats are decoded, every pixel mode makes a model, and
what cannot make one says why."""

from __future__ import annotations

import pytest
from odd_images import EPS, bomb, encoded, modes
from PIL import Image
from service_harness import QUICK, run_job


@pytest.mark.parametrize("mode", modes())
def test_an_image_in_any_pixel_mode_makes_a_model(client, mode):
    result = run_job(client, modes()[mode], QUICK)[-1]
    assert result.type == "result", result.header


@pytest.mark.parametrize(
    ("data", "code", "says"),
    [
        (EPS, "image_unrecognized", "PNG, JPEG, WEBP, BMP or TIFF"),
        (bomb(), "image_too_large", "more pixels than the limit"),
        (encoded(Image.new("RGB", (64, 64), "white")), "no_foreground", "no object could be told apart"),
    ],
    ids=["eps", "bomb", "plain"],
)
def test_an_image_that_cannot_make_a_model_says_why(client, image, data, code, says):
    error = run_job(client, data, QUICK)[-1]
    assert error.type == "error"
    assert (error.header["code"], error.header["retryable"]) == (code, False)
    assert says in error.header["message"]
