"""Batch bookkeeping and the grid that keeps models apart."""

from __future__ import annotations

import itertools
import math
import os

from triposr_addon.batch import (
    CELL_SIZE,
    IN_FLIGHT,
    PLACED_IN_FLIGHT,
    Batch,
    cell_for,
    grid_offset,
    image_count,
    images_in_folder,
)
from triposr_addon.tracker import JobState


def test_the_grid_is_near_square_and_cells_never_share_a_place():
    offsets = [grid_offset(index, 6, 2.0) for index in range(6)]
    assert offsets == [(0, 0), (2, 0), (4, 0), (0, -2), (2, -2), (4, -2)]
    many = [grid_offset(index, 50, 2.5) for index in range(50)]
    for a, b in itertools.combinations(many, 2):
        assert math.dist(a, b) >= 2.5 - 1e-9


def test_cells_grow_for_large_models_only():
    assert cell_for(0.5) == CELL_SIZE
    assert cell_for(10.0) > 10.0


def test_at_most_a_few_jobs_go_to_the_sidecar_at_once(tmp_path):
    paths = [tmp_path / f"{index}.png" for index in range(7)]
    batch = Batch.from_paths("b", paths)
    sent = batch.to_send()
    assert len(sent) == IN_FLIGHT
    for item in sent:
        item.state = JobState.RUNNING
    assert batch.to_send() == [] and batch.running
    sent[0].state = JobState.DONE
    assert len(batch.to_send()) == 1
    assert batch.progress_text() == "1 / 7: 1 made"


def test_a_batch_the_sidecar_places_shares_one_budget_and_gives_it_more_jobs_at_once(tmp_path):
    paths = [tmp_path / f"{index}.png" for index in range(30)]
    placed = Batch.from_paths("b", paths, params={"backend": "fastest", "budget": 0.5})
    assert placed.placed and placed.sent_params() == {"backend": "fastest", "budget": 0.5, "batch": placed.id}
    assert len(placed.to_send()) == PLACED_IN_FLIGHT
    again = Batch.from_paths("b", paths, params={"backend": "fastest", "budget": 0.5})
    assert again.id != placed.id, "a batch run again has a budget of its own"
    local = Batch.from_paths("b", paths, params={"backend": "local"})
    assert not local.placed and local.sent_params() == {"backend": "local"}
    assert len(local.to_send()) == IN_FLIGHT


def test_the_images_of_a_folder_are_counted_again_once_it_changes(tmp_path):
    assert image_count(tmp_path / "missing") == 0
    (tmp_path / "a.png").touch()
    (tmp_path / "notes.txt").touch()
    assert image_count(tmp_path) == 1
    (tmp_path / "b.jpg").touch()
    # the folder's time moves with the clock's coarse ticks: make sure it has moved on, as it soon does
    changed = tmp_path.stat().st_mtime_ns + 1_000_000_000
    os.utime(tmp_path, ns=(changed, changed))
    assert image_count(tmp_path) == 2


def test_a_stopped_batch_sends_nothing_more_and_ends_when_its_jobs_have(tmp_path):
    batch = Batch.from_paths("b", [tmp_path / f"{index}.png" for index in range(3)])
    batch.items[0].state = JobState.RUNNING
    batch.stopped = True
    assert batch.to_send() == [] and batch.running
    batch.items[0].state = JobState.CANCELLED
    assert not batch.running


def test_a_folder_gives_its_images_in_order(tmp_path):
    for name in ("b.PNG", "a.jpg", "notes.txt", ".hidden.png", "c.webp"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()
    assert [path.name for path in images_in_folder(tmp_path)] == ["a.jpg", "b.PNG", "c.webp"]
