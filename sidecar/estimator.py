"""Estimates for this sidecar's backends, kept current: each finished run is recorded, and each estimate is
made from the runs recorded so far (`estimates.py` says how).

The socket thread records every result before it is sent, answers `estimate` requests, and asks how long and
how much a job would take on each lane when it places a batch.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from typing import Any

import psutil

from .backends.local import LocalBackend
from .backends.replicate_settings import ReplicateSettings
from .estimates import (
    DEFAULT_ASSET_SECONDS,
    DEFAULT_NETWORK_SECONDS,
    DEFAULT_REPLICATE_SECONDS,
    Estimate,
    estimate,
    features,
    local_stages,
    peak_memory,
    replicate_stages,
)
from .measurements import Measurements, Run
from .params import JobParams

log = logging.getLogger(__name__)

# Runs read from the database are reused this long: `bench` may add some from another process meanwhile.
FRESH_SECONDS = 10.0
# The share of the memory free now that a local job may count on: the rest is Blender's and the system's.
USABLE_MEMORY_SHARE = 0.9
# A sidecar on another machine is taken for one with an NVIDIA GPU until it has run something.
PEER_DEVICE = "cuda"


class Estimator:
    def __init__(self, measurements: Measurements, local: LocalBackend, replicate: ReplicateSettings):
        self._measurements = measurements
        self._local = local
        self._replicate = replicate
        self._read: dict[tuple[str, str | None], tuple[float, list[Run]]] = {}

    def record(self, params: JobParams, result: dict[str, Any]) -> None:
        """Keep what a finished job cost; a database that fails costs the estimates, never the job."""
        lane = result["backend"]
        network = self._local.network if lane == "local" else result["model"]
        if network is None:
            return
        run = Run(
            lane=lane,
            place=result["device"],
            network=network,
            params=features(params.generation, params.assets),
            stage_seconds=result["stage_seconds"],
            peak_rss_bytes=result.get("peak_rss_bytes"),
            peak_device_bytes=result.get("peak_device_bytes"),
            cost=result.get("cost"),
        )
        try:
            self._measurements.add(run)
        except sqlite3.Error:
            log.exception("The run of a %s job could not be recorded for estimates", lane)
        self._read.clear()

    # Each lane's estimate for one job.

    def local(self, params: JobParams) -> Estimate:
        device_type = _device_type(self._local.model_state.device)
        defaults = {**DEFAULT_NETWORK_SECONDS[device_type], **DEFAULT_ASSET_SECONDS}
        stages = local_stages(params.assets)
        return self._estimate(self._local_runs(), params, stages, defaults)

    def replicate(self, params: JobParams) -> tuple[Estimate, float]:
        """The time and the cost in dollars of the job on Replicate."""
        model = self._replicate.models[params.replicate_model]
        runs = self._runs("replicate", model.identity)
        defaults = {**DEFAULT_REPLICATE_SECONDS, **DEFAULT_ASSET_SECONDS}
        found = self._estimate(runs, params, replicate_stages(params.assets), defaults)
        costs = sorted(run.cost for run in runs if run.cost is not None)
        cost = (
            costs[len(costs) // 2] if costs else model.price_per_second * DEFAULT_REPLICATE_SECONDS["predict"]
        )
        return found, cost

    def peer(self, lane: str, params: JobParams) -> Estimate:
        defaults = {**DEFAULT_NETWORK_SECONDS[PEER_DEVICE], **DEFAULT_ASSET_SECONDS}
        return self._estimate(self._runs(lane), params, local_stages(params.assets), defaults)

    # What the scheduler asks of a lane ("local", "replicate" or "peer ENDPOINT").

    def seconds(self, lane: str, params: JobParams) -> float:
        if lane == "local":
            return self.local(params).seconds
        if lane == "replicate":
            return self.replicate(params)[0].seconds
        return self.peer(lane, params).seconds

    def cost(self, lane: str, params: JobParams) -> float:
        return self.replicate(params)[1] if lane == "replicate" else 0.0

    # The `estimate` reply.

    def describe(self, params: JobParams, count: int, replicate_usable: bool) -> dict[str, Any]:
        local = self.local(params)
        peak = peak_memory(self._local_runs(), features(params.generation, params.assets))
        fields: dict[str, Any] = {
            "count": count,
            "local": {
                **local.fields(),
                "batch_seconds": round(local.seconds * count, 2),
                "peak_rss_bytes": peak,
                "memory": _memory(peak),
            },
            "replicate": None,
        }
        if replicate_usable:
            remote, cost = self.replicate(params)
            concurrency = self._replicate.concurrency
            fields["replicate"] = {
                **remote.fields(),
                "cost": round(cost, 4),
                "batch_seconds": round(remote.seconds * math.ceil(count / concurrency), 2),
                "batch_cost": round(cost * count, 4),
                "concurrency": concurrency,
            }
        return fields

    def _estimate(self, runs: list[Run], params: JobParams, stages: tuple[str, ...], defaults) -> Estimate:
        return estimate(runs, features(params.generation, params.assets), stages, defaults)

    def _local_runs(self) -> list[Run]:
        """Runs of this network on this device: none until the model has loaded."""
        device, network = self._local.model_state.device, self._local.network
        return [run for run in self._runs("local", network) if run.place == device] if network else []

    def _runs(self, lane: str, network: str | None = None) -> list[Run]:
        key = (lane, network)
        read_at, runs = self._read.get(key, (0.0, []))
        if time.monotonic() - read_at > FRESH_SECONDS:
            runs = self._measurements.runs(lane, network)
            self._read[key] = (time.monotonic(), runs)
        return runs


def _memory(peak_rss_bytes: int) -> dict[str, Any]:
    """Whether the job's peak fits in what is free now, beside what the sidecar already holds (the model)."""
    needed = max(peak_rss_bytes - psutil.Process().memory_info().rss, 0)
    free = psutil.virtual_memory().available
    return {"needed_bytes": needed, "free_bytes": free, "fits": needed <= USABLE_MEMORY_SHARE * free}


def _device_type(device: str) -> str:
    """ "cuda:0 (NVIDIA H200)" -> "cuda"; a device asked for but not loaded ("auto") counts as the CPU."""
    kind = device.split(":")[0].split(" ")[0]
    return kind if kind in DEFAULT_NETWORK_SECONDS else "cpu"
