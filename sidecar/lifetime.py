"""How long a sidecar started for a Blender lives: while the process that started it (`--parent-pid`) or any
process a client on this machine named in `hello` (another Blender sharing it) still runs.

A sidecar started without `--parent-pid` serves whoever comes until it is told to stop, so it watches no one.
"""

from __future__ import annotations

import logging
import time

import psutil

from .processes import is_alive

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0


class Lifetime:
    def __init__(self, parent: psutil.Process | None):
        self._parent_pid = parent.pid if parent is not None else None
        self._processes: dict[int, psutil.Process] = {parent.pid: parent} if parent is not None else {}
        self._clients: list[int] = []  # every client process it stayed up for, to say so when it stops
        self._next_check = 0.0

    def stay_up_for(self, pid: int) -> None:
        """Stay up while this process runs too, as for the parent."""
        if self._parent_pid is None or pid in self._processes:
            return
        try:
            self._processes[pid] = psutil.Process(pid)  # it keeps the start time: a reused pid is not it
        except psutil.Error:  # gone already, or not this user's to see: nothing to wait for
            log.debug("Process %d, named by a client, cannot be watched; ignored", pid)
            return
        self._clients.append(pid)
        log.info("Staying up while process %d runs too", pid)

    def ended(self) -> str | None:
        """Why to stop, once every process it serves has exited; checked every CHECK_SECONDS."""
        if self._parent_pid is None or time.monotonic() < self._next_check:
            return None
        self._next_check = time.monotonic() + CHECK_SECONDS
        for pid, process in list(self._processes.items()):
            if not is_alive(process):
                del self._processes[pid]
                if self._processes:
                    log.info("Process %d has exited; staying up for %s", pid, sorted(self._processes))
        if self._processes:
            return None
        if not self._clients:
            return f"the parent process {self._parent_pid} has exited"
        clients = ", ".join(map(str, self._clients))
        return f"the parent process {self._parent_pid} and the client processes {clients} have exited"
