"""What finished runs cost, kept in the data folder for estimates: stage times, peak memory and price.

Every job that ends with a model adds a run, and so does `bench`, which can write while a sidecar runs on the
same folder: the database is in WAL mode and waits for the other's lock. Only the newest MAX_RUNS_PER_LANE
runs of each lane are kept, so that estimates follow the machine as it is now.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILE_NAME = "runs.sqlite"
MAX_RUNS_PER_LANE = 400
LOCK_WAIT_SECONDS = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    lane TEXT NOT NULL,
    place TEXT NOT NULL,
    network TEXT NOT NULL,
    params TEXT NOT NULL,
    stage_seconds TEXT NOT NULL,
    peak_rss_bytes INTEGER,
    peak_device_bytes INTEGER,
    cost REAL,
    origin TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_lane ON runs (lane, network, id);
"""


@dataclass(frozen=True)
class Run:
    lane: str  # "local", "replicate" or "peer ENDPOINT"
    place: str  # the device it ran on, or the Replicate hardware
    network: str  # what decides its speed beyond the parameters: local architecture and precision, or model
    params: dict[str, Any]  # the job's generation and asset parameters
    stage_seconds: dict[str, float]
    peak_rss_bytes: int | None = None
    peak_device_bytes: int | None = None
    cost: float | None = None
    origin: str = "job"  # "job" or "bench"
    at: float = field(default_factory=time.time)

    @property
    def seconds(self) -> float:
        return sum(self.stage_seconds.values())


class Measurements:
    def __init__(self, data_dir: Path):
        data_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            data_dir / FILE_NAME, timeout=LOCK_WAIT_SECONDS, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def add(self, run: Run) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO runs (lane, place, network, params, stage_seconds, peak_rss_bytes, "
                "peak_device_bytes, cost, origin, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.lane,
                    run.place,
                    run.network,
                    json.dumps(run.params, sort_keys=True),
                    json.dumps(run.stage_seconds),
                    run.peak_rss_bytes,
                    run.peak_device_bytes,
                    run.cost,
                    run.origin,
                    run.at,
                ),
            )
            self._db.execute(
                "DELETE FROM runs WHERE lane = ? AND id NOT IN "
                "(SELECT id FROM runs WHERE lane = ? ORDER BY id DESC LIMIT ?)",
                (run.lane, run.lane, MAX_RUNS_PER_LANE),
            )

    def runs(self, lane: str, network: str | None = None) -> list[Run]:
        """The lane's runs, newest first; only those of `network` when it is given."""
        query = "SELECT lane, place, network, params, stage_seconds, peak_rss_bytes, peak_device_bytes, "
        query += "cost, origin, at FROM runs WHERE lane = ?"
        arguments: tuple = (lane,)
        if network is not None:
            query += " AND network = ?"
            arguments += (network,)
        rows = self._db.execute(query + " ORDER BY id DESC", arguments).fetchall()
        return [_run(row) for row in rows]

    def close(self) -> None:
        self._db.close()


def _run(row: tuple) -> Run:
    lane, place, network, params, stage_seconds, rss, device, cost, origin, at = row
    return Run(
        lane, place, network, json.loads(params), json.loads(stage_seconds), rss, device, cost, origin, at
    )
