"""The job store: `jobs.sqlite` and `results/<job>.glb` in one data folder, kept across restarts.

Only the socket thread uses the database. The worker writes the GLB files (atomically) before it reports a
result, so a result in the database has its file until the store's limits prune it (`retention.py`); a
pruned result keeps its row, and its job is then answered with `result_missing`. Values are JSON in sqlite;
nothing is pickled.
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
    backend TEXT NOT NULL,            -- where it ran: local, replicate or peer (a moved auto job: replicate)
    device TEXT,
    stage_seconds TEXT,               -- JSON
    peak_rss_bytes INTEGER,
    peak_device_bytes INTEGER,
    cost REAL,                        -- US dollars, estimated, for a paid backend
    metrics TEXT,                     -- JSON: the prediction's metrics as Replicate reports them
    prediction TEXT,                  -- the prediction's id on Replicate
    failover TEXT,                    -- JSON: why an auto job moved from local to Replicate
    placement TEXT,                   -- JSON: where it was placed (backend, peer) and why
    vertices INTEGER,
    faces INTEGER,
    glb_file TEXT,                    -- under results/
    glb_bytes INTEGER,
    source_job TEXT,                  -- the earlier job whose result this one reused
    error_code TEXT,
    error_message TEXT,
    created_at REAL NOT NULL,         -- Unix time
    used_at REAL,                     -- when the result was last made or sent: the least recent goes first
    finished_at REAL
);
-- What the jobs whose rows were pruned had cost, so that the total stays what was paid.
CREATE TABLE IF NOT EXISTS pruned (id INTEGER PRIMARY KEY CHECK (id = 0), cost REAL NOT NULL);
INSERT OR IGNORE INTO pruned VALUES (0, 0.0);
CREATE INDEX IF NOT EXISTS jobs_by_cache_key ON jobs (cache_key, status);
CREATE INDEX IF NOT EXISTS jobs_by_created_at ON jobs (created_at);
"""
# Columns later releases added, for a database an earlier one made.
ADDED_COLUMNS = {
    "metrics": "TEXT",
    "prediction": "TEXT",
    "failover": "TEXT",
    "used_at": "REAL",
    "placement": "TEXT",
}
JSON_COLUMNS = ("params", "stage_seconds", "metrics", "failover", "placement")


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
    placement: dict[str, Any] | None = None  # backend, peer and reason: where the job went, and why
    vertices: int | None = None
    faces: int | None = None
    glb_file: str | None = None
    glb_bytes: int | None = None
    source_job: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_at: float = 0.0
    finished_at: float | None = None
    used_at: float | None = None

    @property
    def retryable(self) -> bool:
        return self.error_code is not None and ERROR_CODES.get(self.error_code, False)

    def describe(self) -> dict[str, Any]:
        """The record as `result` headers and `list` entries carry it (without the job id)."""
        described = asdict(self)
        for internal in ("id", "cache_key", "glb_file", "used_at"):
            del described[internal]
        described["total_seconds"] = round(sum((self.stage_seconds or {}).values()), 4)
        described["cost_estimated"] = cost_estimated(self.cost, self.metrics)
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
        """What all the jobs ever in the store cost, in US dollars (failed and cancelled predictions are paid
        for too, and pruned rows count with what they cost)."""
        (listed,) = self._db.execute("SELECT TOTAL(cost) FROM jobs").fetchone()
        (pruned,) = self._db.execute("SELECT cost FROM pruned").fetchone()
        return round(listed + pruned, 6)

    def finish(self, job: str, glb_file: str, **outcome: Any) -> JobRecord:
        """Record a finished job whose GLB is results/`glb_file`; `outcome` holds the result's metadata."""
        now = time.time()
        self.update(job, status="done", glb_file=glb_file, finished_at=now, used_at=now, **outcome)
        return self.get(job)

    def touch(self, record: JobRecord) -> None:
        """Note that a result was used again, so that it is among the last to be pruned."""
        self._db.execute("UPDATE jobs SET used_at = ? WHERE glb_file = ?", (time.time(), record.glb_file))

    def has_result(self, record: JobRecord) -> bool:
        """Whether a finished job's GLB is still there (the store's limits may have pruned it)."""
        return self.result_path(record).is_file()

    def fail(self, job: str, code: str, message: str, **record: Any) -> None:
        """Record a failed job; `record` holds what is known of its run (a failed prediction's cost)."""
        self.update(
            job, status="failed", error_code=code, error_message=message, finished_at=time.time(), **record
        )

    def update(self, job: str, **columns: Any) -> None:
        row = _row(columns)
        assignments = ", ".join(f"{name} = ?" for name in row)
        self._db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*row.values(), job))

    def cancel(self, job: str, **record: Any) -> None:
        """Record a cancelled job; `record` holds what is known of its run (a cancelled prediction's cost)."""
        self.update(job, status="cancelled", finished_at=time.time(), **record)

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
            used_at=now,
        )
        self.add(record)
        self.touch(record)
        return record

    # What the store's limits (retention.py) prune by.

    def result_uses(self) -> dict[str, float]:
        """Each GLB file that finished jobs name, with when it was last used."""
        rows = self._db.execute(
            "SELECT glb_file, MAX(COALESCE(used_at, finished_at, created_at)) FROM jobs "
            "WHERE status = 'done' AND glb_file IS NOT NULL GROUP BY glb_file"
        )
        return dict(rows.fetchall())

    def unused_since(self, moment: float) -> list[str]:
        """The finished jobs whose results (or failures) nobody has used since `moment`."""
        rows = self._db.execute(
            "SELECT id FROM jobs WHERE status IN ('done', 'failed', 'cancelled') "
            "AND COALESCE(used_at, finished_at, created_at) < ?",
            (moment,),
        )
        return [row[0] for row in rows]

    def failures_beyond(self, keep: int) -> list[str]:
        """The failed and cancelled jobs older than the newest `keep` of them."""
        rows = self._db.execute(
            "SELECT id FROM jobs WHERE status IN ('failed', 'cancelled') ORDER BY created_at DESC LIMIT -1 "
            "OFFSET ?",
            (keep,),
        )
        return [row[0] for row in rows]

    def forget(self, jobs: list[str]) -> set[str]:
        """Delete jobs' rows; what they cost stays in the total. The GLB files no row names any more are
        returned, for the caller to delete."""
        files: set[str] = set()
        for start in range(0, len(jobs), 500):  # sqlite's limit on the parameters of one statement
            batch = jobs[start : start + 500]
            marks = ", ".join("?" * len(batch))
            rows = self._db.execute(f"SELECT glb_file FROM jobs WHERE id IN ({marks})", batch)
            files |= {name for (name,) in rows if name}
            self._db.execute("BEGIN")  # the cost moves and the rows go together, or neither does
            try:
                self._db.execute(
                    f"UPDATE pruned SET cost = cost + (SELECT TOTAL(cost) FROM jobs WHERE id IN ({marks}))",
                    batch,
                )
                self._db.execute(f"DELETE FROM jobs WHERE id IN ({marks})", batch)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        named = self._db.execute("SELECT DISTINCT glb_file FROM jobs WHERE glb_file IS NOT NULL")
        return files - {name for (name,) in named}

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


def cost_estimated(cost: float | None, metrics: dict[str, float] | None) -> bool | None:
    """Whether a cost was reckoned from the sidecar's own clock, Replicate having reported no
    `predict_time` (a prediction cancelled, or one that stopped answering); None when nothing was paid."""
    return None if cost is None else "predict_time" not in (metrics or {})


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
