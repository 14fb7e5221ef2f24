"""Whether another process still runs."""

from __future__ import annotations

import psutil


def is_alive(process: psutil.Process) -> bool:
    """Running, and not a zombie: one that has exited but that its parent has not reaped yet."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
