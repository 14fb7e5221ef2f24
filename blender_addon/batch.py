"""Batches: which images, how far along, and where each model goes on the grid. No bpy.

Each image's model lands in its own collection inside the batch's collection, on a grid of square cells
laid out from the 3D cursor: columns along +X, rows along -Y. A cell is wide enough for the largest model so
far, so when a bigger model arrives the grid spreads out instead of letting models overlap.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .shared.protocol import POLICIES
from .tracker import JobState

# What the sidecar decodes (Pillow), by file name.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tga", ".tif", ".tiff"})
# TripoSR's models fit a cube of side 1.74 (its radius 0.87): cells of 2.2 m keep them apart from the start.
CELL_SIZE = 2.2
GAP = 1.2  # a cell is this much wider than the largest model in it
IN_FLIGHT = 4  # jobs sent to the sidecar at once: keeps its queue short, and Replicate's predictions busy
# ... where the sidecar places the batch's jobs itself: it spreads what it holds over every place it has
PLACED_IN_FLIGHT = 24
SUMMARISED = (
    ("made", JobState.DONE),
    ("failed", JobState.FAILED),
    ("cancelled", JobState.CANCELLED),
    ("kept in Recent Results", JobState.KEPT),
)
RETRIES = 2  # extra tries for an error the sidecar calls retryable (a full queue, a rate limit)


def model_key(image: str, params: dict) -> str:
    """What makes two batch models the same: the image file and the settings it was made with."""
    return json.dumps([str(Path(image).resolve()), params], sort_keys=True)


def images_in_folder(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )


_counted: dict[Path, tuple[int, int]] = {}  # folder -> (its mtime, images in it): the panel asks every tick


def image_count(folder: Path) -> int:
    """How many images the folder holds, 0 for no folder; counted again only once the folder changes."""
    try:
        changed = folder.stat().st_mtime_ns
        if folder not in _counted or _counted[folder][0] != changed:
            _counted[folder] = (changed, len(images_in_folder(folder)))
    except OSError:
        return 0
    return _counted[folder][1]


def grid_offset(index: int, count: int, cell: float) -> tuple[float, float]:
    """The (x, y) offset of item `index` of `count` from the grid's corner: a near-square grid."""
    columns = max(1, math.ceil(math.sqrt(count)))
    row, column = divmod(index, columns)
    return column * cell, -row * cell


def cell_for(largest_size: float) -> float:
    return max(CELL_SIZE, largest_size * GAP)


@dataclass
class BatchItem:
    path: str
    name: str
    state: JobState | None = None  # None: not sent yet
    job: str = ""
    message: str = ""  # why it failed, or that it came from the store
    collection: str = ""  # its collection once imported
    offset: tuple[float, float] = (0.0, 0.0)  # where it was placed, relative to the batch's corner
    tries: int = 0
    resent: bool = False  # sent again after the sidecar died under it


@dataclass
class Batch:
    name: str  # what its collection is called (when made: Blender may add .001)
    items: list[BatchItem]
    collection: str = ""  # its collection, once the first model has arrived
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the 3D cursor when the batch started
    cell: float = CELL_SIZE
    stopped: bool = False
    params: dict = field(default_factory=dict)
    announced: bool = False  # its end has been reported
    skipped: int = 0  # images left out because their models are already in the file
    id: str = field(
        default_factory=lambda: uuid.uuid4().hex
    )  # names it to the sidecar, which shares its budget

    @property
    def placed(self) -> bool:
        """Whether the sidecar chooses where each of its jobs runs (a routing policy)."""
        return self.params.get("backend") in POLICIES

    def sent_params(self) -> dict:
        """The parameters its jobs are sent with: a placed batch's name its batch, whose budget they share."""
        return {**self.params, "batch": self.id} if self.placed else self.params

    @classmethod
    def from_paths(cls, name: str, paths: list[Path], **kwargs) -> Batch:
        return cls(name, [BatchItem(str(path), path.stem) for path in paths], **kwargs)

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def finished(self) -> int:
        return sum(1 for item in self.items if item.state is not None and item.state.finished)

    @property
    def failed(self) -> list[BatchItem]:
        return [item for item in self.items if item.state is JobState.FAILED]

    @property
    def running(self) -> bool:
        return self.finished < self.total and not (self.stopped and not self.in_flight())

    def summary(self) -> str:
        """What became of its images so far: "5 made, 1 failed"."""
        counts = {word: sum(item.state is state for item in self.items) for word, state in SUMMARISED}
        counts["already in this file"] = self.skipped
        return ", ".join(f"{count} {word}" for word, count in counts.items() if count or word == "made")

    def progress_text(self) -> str:
        return f"{self.finished} / {self.total}: {self.summary()}" if self.running else self.summary()

    def in_flight(self) -> list[BatchItem]:
        return [item for item in self.items if item.state is not None and not item.state.finished]

    def to_send(self) -> list[BatchItem]:
        """The items to submit now, keeping at most IN_FLIGHT with the sidecar."""
        if self.stopped:
            return []
        waiting = [item for item in self.items if item.state is None]
        limit = PLACED_IN_FLIGHT if self.placed else IN_FLIGHT
        return waiting[: max(0, limit - len(self.in_flight()))]

    def offset_of(self, item: BatchItem) -> tuple[float, float]:
        return grid_offset(self.items.index(item), self.total, self.cell)
