"""The job store: `jobs.sqlite` and `results/<job>.glb` in one data folder, kept across restarts.

Only the socket thread uses the database. The worker writes the GLB files (atomically) before it reports a
result, so a result in the database always has its file. Values are JSON in sqlite; nothing is pickled.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import psutil

from shared.protocol import ERROR_CODES

from .fileio import write_atomically
from .processes import is_alive

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,             -- queued, running, done, failed, cancelled
    image_sha256 TEXT NOT NULL,
    filename TEXT,
    params TEXT NOT NULL,             -- JSON, as the job was accepted
    cache_key TEXT NOT NULL,
    model TEXT NOT NULL,
    backend TEXT NOT NULL,            -- where it ran: local or replicate (an auto job that moved: replicate)
    device TEXT,
    stage_seconds TEXT,               -- JSON
    peak_rss_bytes INTEGER,
    peak_device_bytes INTEGER,
    cost REAL,                        -- US dollars, estimated, for a paid backend
    metrics TEXT,                     -- JSON: the prediction's metrics as Replicate reports them
    prediction TEXT,                  -- the prediction's id on Replicate
    failover TEXT,                    -- JSON: why an auto job moved from local to Replicate
    vertices INTEGER,
    faces INTEGER,
    glb_file TEXT,                    -- under results/
    glb_bytes INTEGER,
    source_job TEXT,                  -- the earlier job whose result this one reused
    error_code TEXT,
    error_message TEXT,
    created_at REAL NOT NULL,         -- Unix time
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_cache_key ON jobs (cache_key, status);
CREATE INDEX IF NOT EXISTS jobs_by_created_at ON jobs (created_at);
"""
# Columns later releases added, for a database an earlier one made.
ADDED_COLUMNS = {"metrics": "TEXT", "prediction": "TEXT", "failover": "TEXT"}
JSON_COLUMNS = ("params", "stage_seconds", "metrics", "failover")


class StoreError(Exception):
    """The data folder cannot be used; the message says why."""


@dataclass(frozen=True)
class JobRecord:
    id: str
    status: str
    image_sha256: str
    filename: str | None
    params: dict[str, Any]
    cache_key: str
    model: str
    backend: str
    device: str | None = None
    stage_seconds: dict[str, float] | None = None
    peak_rss_bytes: int | None = None
    peak_device_bytes: int | None = None
    cost: float | None = None
    metrics: dict[str, float] | None = None
    prediction: str | None = None
    failover: dict[str, Any] | None = None
    vertices: int | None = None
    faces: int | None = None
    glb_file: str | None = None
    glb_bytes: int | None = None
    source_job: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_at: float = 0.0
    finished_at: float | None = None

    @property
    def retryable(self) -> bool:
        return self.error_code is not None and ERROR_CODES.get(self.error_code, False)

    def describe(self) -> dict[str, Any]:
        """The record as `result` headers and `list` entries carry it (without the job id)."""
        described = asdict(self)
        for internal in ("id", "cache_key", "glb_file"):
            del described[internal]
        described["total_seconds"] = round(sum((self.stage_seconds or {}).values()), 4)
        return described


class Store:
    def __init__(self, folder: Path):
        self.folder = folder
        self.results_dir = folder / "results"
        try:
            self.results_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"The data folder {folder} cannot be created: {exc.strerror}.") from exc
        self._lock = FolderLock(folder / "sidecar.pid")
        self._lock.acquire()
        database = folder / "jobs.sqlite"
        try:
            self._db = sqlite3.connect(database, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
            self._add_columns()
            self._mark_interrupted()
        except sqlite3.Error as exc:
            self._lock.release()
            raise StoreError(
                f"The job database {database} cannot be used ({exc}); move it aside to start afresh."
            ) from exc

    def close(self) -> None:
        self._db.close()
        self._lock.release()

    def result_path(self, record: JobRecord) -> Path:
        return self.results_dir / (record.glb_file or result_name(record.id))

    def add(self, record: JobRecord) -> None:
        """Insert a job, replacing an earlier run of the same id (one that failed and may be retried)."""
        row = _row(asdict(record))
        names = ", ".join(row)
        self._db.execute(
            f"INSERT OR REPLACE INTO jobs ({names}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
        )

    def get(self, job: str) -> JobRecord | None:
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job,)).fetchone()
        return _record(row) if row else None

    def cached_result(self, cache_key: str) -> JobRecord | None:
        """A finished job that made the model this key names, if its GLB is still on disk."""
        rows = self._db.execute(
            "SELECT * FROM jobs WHERE cache_key = ? AND status = 'done' ORDER BY finished_at DESC",
            (cache_key,),
        )
        for row in rows:
            record = _record(row)
            if self.result_path(record).is_file():
                return record
        return None

    def recent(self, limit: int) -> list[JobRecord]:
        rows = self._db.execute("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,))
        return [_record(row) for row in rows]

    def mark_running(self, job: str) -> None:
        self._db.execute("UPDATE jobs SET status = 'running' WHERE id = ? AND status = 'queued'", (job,))

    def total_cost(self) -> float:
        """What all the jobs in the store cost, in US dollars (failed predictions are paid for too)."""
        return round(self._db.execute("SELECT TOTAL(cost) FROM jobs").fetchone()[0], 6)

    def finish(self, job: str, **outcome: Any) -> JobRecord:
        """Record a finished job; `outcome` holds the result's metadata columns."""
        self.update(job, status="done", glb_file=result_name(job), finished_at=time.time(), **outcome)
        return self.get(job)

    def fail(self, job: str, code: str, message: str, **record: Any) -> None:
        """Record a failed job; `record` holds what is known of its run (a failed prediction's cost)."""
        self.update(
            job, status="failed", error_code=code, error_message=message, finished_at=time.time(), **record
        )

    def update(self, job: str, **columns: Any) -> None:
        row = _row(columns)
        assignments = ", ".join(f"{name} = ?" for name in row)
        self._db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*row.values(), job))

    def cancel(self, job: str) -> None:
        self._db.execute(
            "UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE id = ?", (time.time(), job)
        )

    def reuse(self, source: JobRecord, job: str, filename: str | None, params: dict[str, Any]) -> JobRecord:
        """Record `job` as answered with the result `source` made."""
        now = time.time()
        record = replace(
            source,
            id=job,
            filename=filename,
            params=params,
            source_job=source.id,
            cost=None if source.cost is None else 0.0,  # nothing ran, so nothing was paid
            created_at=now,
            finished_at=now,
        )
        self.add(record)
        return record

    def _add_columns(self) -> None:
        present = {row["name"] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for name, kind in ADDED_COLUMNS.items():
            if name not in present:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")

    def _mark_interrupted(self) -> None:
        """Jobs queued or running when the last sidecar died will never finish: say so."""
        cursor = self._db.execute(
            "UPDATE jobs SET status = 'failed', error_code = 'interrupted', error_message = ?, "
            "finished_at = ? WHERE status IN ('queued', 'running')",
            ("The sidecar stopped before this job finished. Submit it again.", time.time()),
        )
        if cursor.rowcount:
            log.warning("%d job(s) were cut short when the sidecar last stopped", cursor.rowcount)


class FolderLock:
    """One sidecar per data folder: a pid file, taken over when the process that wrote it is gone."""

    def __init__(self, path: Path):
        self.path = path

    def acquire(self) -> None:
        try:
            owner = int(self.path.read_text())
        except (FileNotFoundError, ValueError):
            owner = None
        if owner is not None and owner != os.getpid() and self._running(owner):
            raise StoreError(
                f"Another sidecar (process {owner}) is using the data folder {self.path.parent}. "
                "Stop it, or give this one its own folder with --data-dir."
            )
        write_atomically(self.path, str(os.getpid()).encode())

    def release(self) -> None:
        self.path.unlink(missing_ok=True)

    def _running(self, pid: int) -> bool:
        """Whether the process that wrote the file still runs: one started after the file was written merely
        reuses its pid."""
        try:
            process = psutil.Process(pid)
            return is_alive(process) and process.create_time() <= self.path.stat().st_mtime + 1.0
        except (psutil.Error, OSError):
            return False


def result_name(job: str) -> str:
    """The file under results/ that a job's GLB is written to."""
    return f"{job}.glb"


def _row(columns: dict[str, Any]) -> dict[str, Any]:
    """Column values as sqlite stores them: the JSON columns as text."""
    return {
        name: json.dumps(value) if name in JSON_COLUMNS and value is not None else value
        for name, value in columns.items()
    }


def _record(row: sqlite3.Row) -> JobRecord:
    values = dict(row)
    for column in JSON_COLUMNS:
        values[column] = json.loads(values[column]) if values[column] is not None else None
    return JobRecord(**{field.name: values[field.name] for field in fields(JobRecord)})
