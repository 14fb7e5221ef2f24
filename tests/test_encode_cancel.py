"""Encoding reports progress between the backbone's blocks, so that a cancelled job stops there."""

from __future__ import annotations

import pytest
import torch
from PIL import Image


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def pixels(tiny_model, tiny_weights):
    return tiny_model.preprocess(Image.open(tiny_weights / "input.png"))


def test_encode_hears_the_share_of_the_backbone_done_before_each_block(tiny_model, pixels):
    heard: list[float] = []
    scene_code = tiny_model.encode(pixels, heard.append)
    blocks = len(tiny_model.backbone.transformer_blocks)
    assert heard == [index / blocks for index in range(blocks)]
    torch.testing.assert_close(scene_code, tiny_model.encode(pixels), rtol=0, atol=0)


@pytest.mark.parametrize("after", [0, 1])
def test_a_progress_callback_that_raises_stops_encode_after_that_many_blocks(tiny_model, pixels, after):
    ran: list[int] = []
    hooks = [
        block.register_forward_hook(lambda *_, index=index: ran.append(index))
        for index, block in enumerate(tiny_model.backbone.transformer_blocks)
    ]

    def progress(fraction: float) -> None:
        if len(ran) == after:
            raise Stop

    try:
        with pytest.raises(Stop):
            tiny_model.encode(pixels, progress)
    finally:
        for hook in hooks:
            hook.remove()
    assert ran == list(range(after))
