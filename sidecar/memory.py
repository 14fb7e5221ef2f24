"""Peak memory over a stretch of work: the process's resident set and the accelerator's allocations."""

from __future__ import annotations

import threading
from types import TracebackType

import psutil
import torch

SAMPLE_SECONDS = 0.02


class PeakMemory:
    """Samples RSS on a background thread while the `with` block runs; reads the device's own peak.

    RSS is sampled because the kernel's lifetime maximum cannot be reset between jobs.
    """

    def __init__(self, device: torch.device | None = None):
        self.device = device
        self.peak_rss = 0
        self.peak_device: int | None = None
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak_rss = max(self.peak_rss, self._process.memory_info().rss)
            if self.device is not None and self.device.type == "mps":
                current = torch.mps.driver_allocated_memory()
                self.peak_device = max(self.peak_device or 0, current)
            if self._stop.wait(SAMPLE_SECONDS):
                return

    def current_peak(self) -> int:
        """The RSS peak so far, while the block still runs."""
        return max(self.peak_rss, self._process.memory_info().rss)

    def __enter__(self) -> PeakMemory:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss = self.current_peak()
        if self.device is not None and self.device.type == "cuda":
            self.peak_device = torch.cuda.max_memory_allocated(self.device)


def format_bytes(count: int | None) -> str:
    if count is None:
        return "n/a"
    if count < 1024**3:
        return f"{count / 1024**2:.0f} MB"
    return f"{count / 1024**3:.2f} GB"
