"""The store's limits: how much disk its results may take, how long a job is kept, how many failures.

Results go least recently used first (made, fetched or reused: each counts as a use). A pruned result keeps
its row, so that `fetch` answers `result_missing` and the same job, submitted again, runs again. Rows older
than the age limit go with their files; failed and cancelled rows beyond the newest few go too (what they
cost stays in the store's total). Pruning runs when the sidecar starts and whenever a new result takes the
store over its size.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .memory import format_bytes
from .store import Store

log = logging.getLogger(__name__)

DEFAULT_MAX_GB = 10.0  # about 2,000 models at the default settings
DEFAULT_MAX_DAYS = 90.0
KEPT_FAILURES = 200  # failed and cancelled rows kept: enough for `list` to show what went wrong lately
PARTIAL_SUFFIX = ".part"  # what fileio.write_atomically writes before its rename


@dataclass(frozen=True)
class StoreLimits:
    max_bytes: int = int(DEFAULT_MAX_GB * 1e9)
    max_age_seconds: float = DEFAULT_MAX_DAYS * 86400


class Retention:
    """Keeps one store within its limits; used by the socket thread, which owns the store."""

    def __init__(self, store: Store, limits: StoreLimits):
        self._store = store
        self._limits = limits
        self._bytes = 0  # the results' size on disk, as of the last prune plus what came since

    def start(self) -> None:
        """Prune at start-up, when no worker writes: files left half-written or without a job go too."""
        self._forget_old_rows()
        uses = self._store.result_uses()
        for entry in self._results():
            if entry.name.endswith(PARTIAL_SUFFIX) or entry.name not in uses:
                Path(entry.path).unlink(missing_ok=True)
        self._shrink()

    def added(self, size: int) -> None:
        """A new result of `size` bytes is in the store."""
        self._bytes += size
        if self._bytes > self._limits.max_bytes:
            self._forget_old_rows()
            self._shrink()

    @property
    def size(self) -> int:
        return self._bytes

    def _forget_old_rows(self) -> None:
        old = self._store.unused_since(time.time() - self._limits.max_age_seconds)
        failures = self._store.failures_beyond(KEPT_FAILURES)
        forgotten = sorted(set(old) | set(failures))
        if forgotten:
            for name in self._store.forget(forgotten):
                (self._store.results_dir / name).unlink(missing_ok=True)
            log.info("Pruned %d job(s) from the store: %d unused for too long", len(forgotten), len(old))

    def _shrink(self) -> None:
        """Delete the least recently used results until the rest fit."""
        uses = self._store.result_uses()
        # Files no finished job names yet may be a worker's, written before the socket thread records them.
        kept = {entry.name: entry.stat().st_size for entry in self._results() if entry.name in uses}
        self._bytes = sum(kept.values())
        newest = max(kept, key=uses.__getitem__, default=None)  # stays, even alone above the limit
        pruned = 0
        for name in sorted(kept, key=uses.__getitem__):
            if self._bytes <= self._limits.max_bytes or name == newest:
                break
            (self._store.results_dir / name).unlink(missing_ok=True)
            self._bytes -= kept[name]
            pruned += 1
        if pruned:
            log.info(
                "Pruned %d result(s), least recently used first: the store holds %s of results "
                "(limit %s, serve --store-max-gb)",
                pruned,
                format_bytes(self._bytes),
                format_bytes(self._limits.max_bytes),
            )

    def _results(self) -> list[os.DirEntry]:
        with os.scandir(self._store.results_dir) as entries:
            return [entry for entry in entries if entry.is_file()]
