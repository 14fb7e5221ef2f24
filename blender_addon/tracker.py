"""What each job is doing, driven by the sidecar's events. No bpy: plain pytest covers it.

A job moves WAITING (for a sidecar that is starting) -> SUBMITTED -> QUEUED (accepted) -> RUNNING (progress)
-> READY (the result is here; the tick imports it) -> DONE, or ends FAILED or CANCELLED. A result that arrives
after the artist pressed Cancel is dropped, so a cancelled job never changes the scene.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

# What each stage of a local job is called in the panel, and roughly what share of the job's time it takes,
# so that one bar runs across the whole job. Stages the add-on does not know show under their own names.
STAGES = {
    "queued": ("Waiting in the queue", 0.0),
    "preprocess": ("Preparing the image", 0.05),
    "encode": ("Encoding the image", 0.05),
    "density": ("Sampling the shape", 0.6),
    "surface": ("Building the surface", 0.25),
    "export": ("Writing the model", 0.05),
}
# The same for a Replicate job; an `auto` job that moves there goes on from its local stage to these.
CLOUD_STAGES = {
    "upload": ("Sending the image to Replicate", 0.05),
    "starting": ("Replicate is starting the model", 0.35),
    "predict": ("Running on Replicate", 0.45),
    "download": ("Fetching the model", 0.1),
    "convert": ("Converting the model", 0.05),
}


class JobState(Enum):
    WAITING = "Waiting for the sidecar"
    SUBMITTED = "Sent"
    QUEUED = "Queued"
    RUNNING = "Running"
    CANCELLING = "Cancelling"
    READY = "Importing"
    DONE = "Done"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class SidecarEvent(Protocol):
    """What `shared.client.Event` offers; the tracker needs nothing else from the client."""

    type: str
    job: str | None
    header: dict[str, Any]
    payload: bytes | None


@dataclass
class Job:
    id: str
    name: str  # what the model is called in Blender: the image's name without extension
    collection: str = ""  # the collection to import into; empty: a new one named after the image
    location: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the 3D cursor when Generate was pressed
    batch: str = ""  # the batch it belongs to, if any
    state: JobState = JobState.SUBMITTED
    stage: str = ""
    fraction: float = 0.0
    position: int | None = None  # place in the sidecar's queue; 1 runs next
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0  # wall time from submit to result
    result: dict[str, Any] = field(default_factory=dict)  # the result header: metadata, maybe a path
    glb: bytes | None = None  # the GLB when it came as bytes
    error: str = ""
    error_code: str = ""
    retryable: bool = False
    objects: list[str] = field(default_factory=list)  # names of what the import created

    @property
    def from_store(self) -> bool:
        return bool(self.result.get("from_store"))

    @property
    def overall(self) -> float:
        """How far the whole job is, 0 to 1."""
        stages = next((table for table in (STAGES, CLOUD_STAGES) if self.stage in table), None)
        if stages is None:
            return self.fraction
        done = 0.0
        for stage, (_label, share) in stages.items():
            if stage == self.stage:
                return min(1.0, done + share * self.fraction)
            done += share
        return done

    def progress_text(self) -> str:
        if self.state is JobState.QUEUED and self.position:
            return "Next in the queue" if self.position == 1 else f"In the queue, {self.position - 1} ahead"
        if self.state is not JobState.RUNNING or not self.stage:
            return self.state.value
        known = STAGES.get(self.stage) or CLOUD_STAGES.get(self.stage)
        label = known[0] if known else self.stage.replace("_", " ").capitalize()
        return f"{label} {self.fraction:.0%}"

    def summary(self) -> list[str]:
        """Lines for the panel once the job has a result."""
        header = self.result
        where = " · ".join(str(header[key]) for key in ("device", "backend") if header.get(key))
        took = "from the store" if self.from_store else f"{self.seconds:.1f} s"
        lines = [f"{took} on {where}" if where else took]
        if header.get("vertices") is not None:
            lines.append(f"{header['vertices']:,} vertices, {header.get('faces', 0):,} faces")
        if header.get("failover"):
            lines.append(f"Made on Replicate: {header['failover'].get('reason', 'the local run failed')}")
        if header.get("cost"):  # none for a local job, nothing to pay for one from the store
            lines.append(f"Cost ${header['cost']:.3f}")
        return lines


class JobTracker:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}

    def add(self, job: Job) -> Job:
        self.jobs[job.id] = job
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def active(self) -> list[Job]:
        return [job for job in self.jobs.values() if not job.state.finished]

    def ready(self) -> list[Job]:
        return [job for job in self.jobs.values() if job.state is JobState.READY]

    def cancel(self, job_id: str) -> bool:
        """Mark a job as cancelled by the artist; False when it is past cancelling."""
        job = self.jobs.get(job_id)
        if job is None or job.state.finished:
            return False
        if job.state is JobState.READY:  # the result is here but not in the scene yet: drop it
            self.finish(job, JobState.CANCELLED)
        else:
            job.state = JobState.CANCELLING
        return True

    def fail(self, job: Job, message: str, code: str = "", retryable: bool = False) -> None:
        job.error, job.error_code, job.retryable = message, code, retryable
        self.finish(job, JobState.FAILED)

    def finish(self, job: Job, state: JobState) -> None:
        job.state = state
        job.glb = None  # a GLB can be large: keep it only until it is imported

    def apply(self, event: SidecarEvent) -> Job | None:
        """Update the job an event is about; the job, or None when it is not ours or already over."""
        job = self.jobs.get(event.job or "")
        if job is None or job.state.finished:
            return None
        header = event.header
        if event.type == "accepted":
            if job.state is JobState.SUBMITTED:
                job.state = JobState.QUEUED
        elif event.type == "progress":
            job.stage = str(header.get("stage", job.stage))
            job.fraction = float(header.get("fraction", job.fraction))
            job.position = header.get("position")
            if job.state is not JobState.CANCELLING:
                job.state = JobState.QUEUED if job.stage == "queued" else JobState.RUNNING
        elif event.type == "result":
            if job.state is JobState.CANCELLING:
                self.finish(job, JobState.CANCELLED)
            else:
                job.state, job.result, job.glb = JobState.READY, header, event.payload
                job.seconds = time.monotonic() - job.started
        elif event.type == "error":
            message = str(header.get("message") or "The sidecar reported an error.")
            self.fail(job, message, str(header.get("code", "")), bool(header.get("retryable")))
        elif event.type == "cancelled":
            self.finish(job, JobState.CANCELLED)
        return job
