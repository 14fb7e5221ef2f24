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

from .advice import in_preference_terms
from .shared.protocol import POLICIES

# What each stage is called in the panel, and about how many seconds it takes on a resolution-256 job (on a
# GPU; in the cloud, on Replicate's A100), so that one bar runs evenly across the stages a job goes through.
# A local job: these, then the asset stages.
LOCAL_STAGES = {
    "preprocess": ("Preparing the image", 0.15),
    "encode": ("Encoding the image", 0.15),
    "density": ("Sampling the shape", 1.8),
}
# A Replicate job, or an `auto` job that moves there: these, then the asset stages.
CLOUD_STAGES = {
    "upload": ("Sending the image to Replicate", 1.5),
    "starting": ("Replicate is starting the model", 10.5),
    "predict": ("Running on Replicate", 13.5),
    "download": ("Fetching the model", 3.0),
    "convert": ("Converting the model", 1.5),
}
# From a surface to an asset, the same for every backend; each runs when the job's parameters call for it.
ASSET_STAGES = {
    "cleanup": ("Cleaning up the surface", 0.05),
    "decimate": ("Reducing the faces", 0.3),
    "colour": ("Colouring the vertices", 0.1),
    "unwrap": ("Unwrapping the UVs", 1.0),
    "bake": ("Baking the texture", 0.8),  # at 1024 x 1024: the time follows the texels
    "place": ("Placing the model", 0.01),
    "export": ("Writing the model", 0.2),
}
STAGES = {**LOCAL_STAGES, **CLOUD_STAGES, **ASSET_STAGES}  # in the order a job meets them


def asset_stages(params: dict[str, Any], cloud: bool) -> list[str]:
    """The asset stages a job's parameters call for, with the sidecar's defaults for those not given."""
    texture = int(params.get("texture") or 0)
    wanted = {
        "cleanup": bool(params.get("cleanup", True) or params.get("smooth")),
        "decimate": bool(params.get("faces")),
        "colour": not texture and not cloud,  # a cloud model arrives coloured
        "unwrap": bool(texture),
        "bake": bool(texture),
        "place": bool(params.get("ground") or params.get("height")),
        "export": True,
    }
    return [stage for stage, called_for in wanted.items() if called_for]


class JobState(Enum):
    WAITING = "Waiting for the sidecar"
    SUBMITTED = "Sent"
    QUEUED = "Queued"
    RUNNING = "Running"
    CANCELLING = "Cancelling"
    READY = "Importing"
    DONE = "Done"
    KEPT = "Kept in Recent Results"  # made for a file that is no longer open: not imported into this one
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.KEPT, JobState.FAILED, JobState.CANCELLED)


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
    file: int = 0  # the .blend it was made for (Session.file when it was sent)
    state: JobState = JobState.SUBMITTED
    params: dict[str, Any] = field(default_factory=dict)  # as sent, then as the sidecar runs them
    stage: str = ""
    fraction: float = 0.0
    stages: list[str] = field(default_factory=list)  # those the sidecar has reported, in order
    position: int | None = None  # place in the sidecar's queue; 1 runs next
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0  # wall time from submit to result
    result: dict[str, Any] = field(default_factory=dict)  # the result header: metadata, maybe a path
    glb: bytes | None = None  # the GLB when it came as bytes
    error: str = ""
    error_code: str = ""
    retryable: bool = False
    objects: list[str] = field(default_factory=list)  # names of what the import created
    announced: bool = False  # its end has been reported

    @property
    def from_store(self) -> bool:
        return bool(self.result.get("from_store"))

    @property
    def cloud(self) -> bool:
        """Whether the model is made on Replicate: asked for, or an `auto` job that has moved there."""
        reported = (*self.stages, self.stage)
        return self.params.get("backend") == "replicate" or any(stage in CLOUD_STAGES for stage in reported)

    def plan(self) -> list[str]:
        """The stages this job goes through, in order: those its parameters call for, and any it reported."""
        front = CLOUD_STAGES if self.cloud else LOCAL_STAGES
        wanted = {*front, *asset_stages(self.params, self.cloud), *self.stages, self.stage}
        return [stage for stage in STAGES if stage in wanted]

    def weight(self, stage: str) -> float:
        """About how long the stage takes: the bake's time follows the texture's texels."""
        seconds = STAGES[stage][1]
        if stage == "bake":
            return seconds * (int(self.params.get("texture") or 1024) / 1024) ** 2
        return seconds

    @property
    def overall(self) -> float:
        """How far the whole job is, 0 to 1. A stage once reported stays in the plan, so the bar goes back
        only when more turns out to lie ahead, as the cloud's stages do for an `auto` job that moves there."""
        plan = self.plan()
        weights = [self.weight(stage) for stage in plan]
        if self.stage in plan:
            index = plan.index(self.stage)
            done = sum(weights[:index]) + weights[index] * self.fraction
        else:  # queued, or a stage this add-on does not know: where the last known one left it
            reached = [plan.index(stage) + 1 for stage in self.stages if stage in plan]
            done = sum(weights[: max(reached, default=0)])
        return min(1.0, done / sum(weights))

    def progress_text(self) -> str:
        if self.state is JobState.QUEUED and self.position:
            return "Next in the queue" if self.position == 1 else f"In the queue, {self.position - 1} ahead"
        if self.state is not JobState.RUNNING or not self.stage:
            return self.state.value
        known = STAGES.get(self.stage)
        label = known[0] if known else self.stage.replace("_", " ").capitalize()
        return f"{label} {self.fraction:.0%}"

    def outcome(self) -> str:
        """How the job ended, in one sentence."""
        if self.state is JobState.FAILED:
            return f"{self.name} failed: {self.error}"
        if self.state is JobState.KEPT:
            return f"{self.name} was made for the file open before: import it from Recent Results"
        return f"{self.name}: {self.state.value.lower()}"

    def summary(self) -> list[str]:
        """Lines for the panel once the job has a result."""
        header = self.result
        where = " · ".join(str(header[key]) for key in ("device", "backend") if header.get(key))
        took = "from the store" if self.from_store else f"{self.seconds:.1f} s"
        lines = [f"{took} on {where}" if where else took]
        if header.get("vertices") is not None:
            lines.append(f"{header['vertices']:,} vertices, {header.get('faces', 0):,} faces")
        if texture := (header.get("params") or {}).get("texture"):
            lines.append(f"{texture} px texture")
        if header.get("failover"):
            lines.append(f"Made on Replicate: {header['failover'].get('reason', 'the local run failed')}")
        elif placed := self.placement():
            lines.append(f"Ran {placed}")
        if header.get("cost"):  # none for a local job, nothing to pay for one from the store
            lines.append(f"Cost ${header['cost']:.3f}")
        return lines

    def placement(self) -> str:
        """Where the sidecar chose to run it, and why ("on Replicate: ..."), for a job it placed; else ""."""
        placed = self.result.get("placement") or {}
        if not placed or self.params.get("backend") not in POLICIES:
            return ""
        backend = str(placed.get("backend"))
        where = {"local": "here", "replicate": "on Replicate"}.get(
            backend
        ) or f"on {placed.get('peer') or backend}"
        return f"{where}: {placed['reason']}" if placed.get("reason") else where


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
            job.params = header.get("params") or job.params
            if job.state is JobState.SUBMITTED:
                job.state = JobState.QUEUED
        elif event.type == "progress":
            job.stage = str(header.get("stage", job.stage))
            if job.stage != "queued" and job.stage not in job.stages:
                job.stages.append(job.stage)
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
            message = in_preference_terms(str(header.get("message") or "The sidecar reported an error."))
            self.fail(job, message, str(header.get("code", "")), bool(header.get("retryable")))
        elif event.type == "cancelled":
            self.finish(job, JobState.CANCELLED)
        return job
