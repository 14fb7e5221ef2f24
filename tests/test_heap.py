"""How the sidecar's process asks for memory."""

from __future__ import annotations

import numpy as np

from sidecar.heap import avoid_huge_page_stalls

multiarray = np._core.multiarray


def test_numpy_is_told_not_to_advise_huge_pages():
    before = multiarray._get_madvise_hugepage()
    try:
        multiarray._set_madvise_hugepage(True)
        avoid_huge_page_stalls()
        assert multiarray._get_madvise_hugepage() is False
    finally:
        multiarray._set_madvise_hugepage(before)
