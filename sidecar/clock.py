"""Stages of a job, timed one by one and reported as they start and end."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Called with a stage name and the fraction of that stage done; raising from it cancels the job.
ProgressCallback = Callable[[str, float], None]


class StageClock:
    """Times each stage and reports its start and end to the progress callback."""

    def __init__(self, progress: ProgressCallback | None):
        self.report: ProgressCallback = progress or (lambda stage, fraction: None)
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.report(name, 0.0)
        started = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - started
        self.report(name, 1.0)

    def reporter(self, name: str) -> Callable[[float], None]:
        """A progress callback for the fraction done within one stage."""
        return lambda fraction: self.report(name, fraction)
