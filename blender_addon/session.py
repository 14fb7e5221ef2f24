"""What the add-on holds while Blender runs: the connection, the jobs, the batch, the process it started.

Nothing here is saved in a .blend and nothing here touches bpy: the tick calls `update()`, the operators make
requests, and plain pytest drives it against a fake client. All of it runs on Blender's main thread.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .advice import in_preference_terms
from .batch import RETRIES, Batch, BatchItem
from .estimates import Estimates
from .launcher import Launcher, LaunchError, LaunchSettings, endpoint_problem, is_local
from .shared.client import SidecarClient, SidecarError
from .shared.protocol import new_job_id
from .tracker import Job, JobState, JobTracker

# How long a tick may wait for `hello`. A sidecar on this computer answers in a millisecond or so; one that
# answered before gets longer, so that a busy moment is not mistaken for its loss.
PROBE_TIMEOUT = 0.02
CONNECTED_PROBE_TIMEOUT = 0.1
PROBE_EVERY = 3.0  # seconds between checks that the sidecar is still there, or has come up
START_TIMEOUT = 120.0  # a first start imports torch and may download weights: give it time
RECENT_LIMIT = 20
OUTCOME_SECONDS = 30.0  # how long the status bar says how the last job or batch ended
RECENT_SCAN = 500  # jobs looked through for those: the most the sidecar lists at once
MODEL_FIELDS = ("image_sha256", "params", "backend")  # jobs alike in these made the same model
# What the sidecar this Blender starts takes from the preferences when it starts, and only then.
RESTART_FIELDS = (
    ("Run With", "runner"),
    ("the sidecar's program", "executable"),
    ("Endpoint", "endpoint"),
    ("Weights", "weights"),
    ("Device", "device"),
    ("Data Folder", "data_dir"),
    ("Replicate Token", "token"),
)
OFFLINE = "Online access is off, and Replicate needs it: allow it in Preferences > System > Network"


@dataclass
class Unsent:
    """A job's request, held while the sidecar starts."""

    image: bytes
    params: dict
    filename: str


@dataclass(frozen=True)
class SidecarInfo:
    """The sidecar as its last `hello` described it."""

    hello: dict[str, Any]

    @property
    def device(self) -> str:
        return str(self.hello.get("device") or "")

    @property
    def weights(self) -> str:
        """One of loading, loaded, failed."""
        return str(self.hello.get("weights") or "")

    @property
    def weights_error(self) -> str:
        return in_preference_terms(str(self.hello.get("weights_error") or ""))

    @property
    def backends(self) -> list[str]:
        return [str(name) for name in self.hello.get("backends") or ["local"]]

    @property
    def version(self) -> str:
        return str(self.hello.get("version") or "")

    @property
    def queue_length(self) -> int:
        return int(self.hello.get("queue_length") or 0)

    @property
    def policies(self) -> list[str]:
        """The backends that let the sidecar choose where each job runs."""
        return [str(name) for name in self.hello.get("policies") or []]

    @property
    def places(self) -> int:
        """Where the sidecar can run a job: its backends, and the other sidecars it hands jobs to."""
        return len(self.backends) + len(self.hello.get("peers") or [])

    @property
    def replicate_models(self) -> list[str]:
        """The Replicate models a job may name, the sidecar's default first."""
        return [str(name) for name in (self.hello.get("replicate") or {}).get("models") or []]

    @property
    def replicate_problem(self) -> str:
        """Why the sidecar has no Replicate backend (no token, say); empty when it has one."""
        return str((self.hello.get("replicate") or {}).get("problem") or "")


def blender_client(endpoint: str, heartbeat_timeout: float) -> SidecarClient:
    """A client that names this Blender in its hello: a sidecar another Blender started stays up while this
    one runs, after that one quits."""
    return SidecarClient(endpoint, heartbeat_timeout=heartbeat_timeout, client_pid=os.getpid())


class Session:
    def __init__(self, make_client: Callable[..., Any] = blender_client) -> None:
        self._make_client = make_client
        self.client: Any = None
        self.endpoint = ""
        self.heartbeat = 15.0
        self.info: SidecarInfo | None = None  # None: the sidecar did not answer
        self.problem = ""  # why there is no sidecar, or why it failed to start
        self.tracker = JobTracker()
        self.unsent: dict[str, Unsent] = {}
        self.launcher = Launcher()
        self.starting_since: float | None = None
        self.next_probe = 0.0
        self.current = ""  # the panel's job: the last one Generate sent
        self.file = 0  # which .blend is open: File > New, Open or Revert moves it on
        self.batch: Batch | None = None
        self.recent: list[dict[str, Any]] = []
        self.total_cost = 0.0  # what every job in the sidecar's store cost, in US dollars
        self.online = True  # Blender's "Allow Online Access", which the tick keeps current
        self.changed = True  # something the panel shows has changed since the tick last redrew it
        # What to report when a job or a batch ends, so that an artist whose sidebar is closed notices: the
        # tick reports it; the status bar shows the last one for a while.
        self.notices: list[tuple[str, str]] = []  # (report level, sentence)
        self.outcome, self.outcome_at = "", 0.0
        self.settings: LaunchSettings | None = None  # the preferences' way to start the sidecar
        self.auto_start = False  # the preferences' Start Automatically
        self.estimates = Estimates()  # the panel's, asked without waiting

    # The connection.

    @property
    def connected(self) -> bool:
        return self.info is not None

    @property
    def starting(self) -> bool:
        return self.starting_since is not None

    @property
    def owned(self) -> bool:
        """Whether the sidecar is the process this Blender started: only then may this Blender stop it."""
        return self.launcher.running

    @property
    def busy(self) -> bool:
        return bool(self.tracker.active()) or self.starting

    @property
    def deliver(self) -> str:
        """A sidecar on this computer hands over the path of its GLB: no megabytes through the socket."""
        return "path" if is_local(self.endpoint) else "bytes"

    def follow(self, settings: LaunchSettings, heartbeat: float, auto_start: bool) -> None:
        """Keep up with the preferences. A problem they caused goes once they change: the next probe or start
        says whether it is still there."""
        if settings != self.settings:
            self.settings, self.problem, self.changed = settings, "", True
        self.auto_start = auto_start
        self.configure(settings.endpoint, heartbeat)

    def configure(self, endpoint: str, heartbeat: float) -> None:
        """Follow the preferences; a new endpoint gets a new client once no job depends on the old one."""
        if (endpoint, heartbeat) != (self.endpoint, self.heartbeat) and not self.tracker.active():
            self.disconnect()
            self.endpoint, self.heartbeat, self.next_probe = endpoint, heartbeat, 0.0

    @property
    def restart_needed(self) -> str:
        """Which preferences the sidecar this Blender started does not run with yet; empty when none."""
        started = self.launcher.settings
        if self.settings is None or started is None or not self.launcher.running:
            return ""
        changed = [
            label
            for label, field in RESTART_FIELDS
            if getattr(self.settings, field) != getattr(started, field)
        ]
        return ", ".join(changed)

    def ensure_client(self) -> Any:
        if problem := endpoint_problem(self.endpoint):  # ZeroMQ would raise on it, and say less
            raise SidecarError("sidecar_unavailable", problem, retryable=False)
        if self.client is None:
            self.client = self._make_client(self.endpoint, heartbeat_timeout=self.heartbeat)
        return self.client

    def disconnect(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client, self.info = None, None
        self.estimates.forget()

    def probe(self, timeout: float | None = None) -> bool:
        """Ask the sidecar for `hello`; True when it answered."""
        self.next_probe = time.monotonic() + PROBE_EVERY
        if problem := endpoint_problem(self.endpoint):
            if problem != self.problem:
                self.problem, self.changed = problem, True
            return False
        if timeout is None:
            timeout = CONNECTED_PROBE_TIMEOUT if self.connected else PROBE_TIMEOUT
        try:
            hello = self.ensure_client().hello(timeout=timeout)
        except SidecarError as exc:
            if self.connected or not self.problem:
                silent = exc.code == "sidecar_unavailable"
                self.problem = f"No sidecar answers at {self.endpoint}." if silent else str(exc)
            self.info, self.changed = None, True
            if not self.client.active_jobs:
                # Requests to an absent sidecar would pile up in the socket: start afresh next time.
                self.disconnect()
            return False
        if self.info is None or self.info.hello != hello:
            self.info, self.changed = SidecarInfo(hello), True
        self.problem, self.starting_since = "", None
        return True

    # The process.

    def start(self, settings: LaunchSettings, log_path: Path, check_timeout: float = 0.3) -> str:
        """Start the sidecar unless one already answers; what happened, in words."""
        self.configure(settings.endpoint, self.heartbeat)
        if self.probe(check_timeout):
            return f"The sidecar at {self.endpoint} is already running."
        if self.launcher.running:
            self.starting_since = self.starting_since or time.monotonic()
            return "The sidecar is starting."
        try:
            self.launch(settings, log_path)
        except LaunchError as exc:
            self.problem, self.changed = str(exc), True
            raise
        return f"Starting the sidecar at {self.endpoint}."

    def launch(self, settings: LaunchSettings, log_path: Path) -> None:
        self.launcher.start(settings, log_path)
        self.starting_since, self.problem, self.changed, self.next_probe = time.monotonic(), "", True, 0.0

    def stop(self) -> str:
        """Ask the sidecar to shut down; end the process this Blender started if it lingers."""
        message = f"Stopped the sidecar at {self.endpoint}."
        try:
            self.ensure_client().shutdown(timeout=1.0)
        except SidecarError as exc:
            if not self.launcher.running:
                message = str(exc)
        self.launcher.stop()
        self.disconnect()
        self.starting_since, self.problem, self.changed = None, "", True
        return message

    def watch_process(self) -> None:
        """Notice at once that the process this Blender started has ended, and a start that takes too long."""
        code = self.launcher.exited()
        if code is not None and self.starting:
            self.starting_since, self.problem = None, self.launcher.start_failure(code)
            self.changed = True
        elif code is not None:
            self.lost_process(self.launcher.stopped(code))
        elif self.starting_since is not None and time.monotonic() - self.starting_since > START_TIMEOUT:
            self.starting_since, self.changed = None, True
            self.problem = (
                f"The sidecar started but has not answered on {self.endpoint} for {START_TIMEOUT:g} s."
            )

    def lost_process(self, message: str) -> None:
        """The sidecar died while serving: its jobs fail now; a running batch starts it again (when Start
        Automatically is on) and sends the jobs the death took once more, when the new one answers."""
        self.disconnect()
        self.problem, self.changed = message, True
        settings, log_path = self.settings, self.launcher.log_path
        restarting = False
        if self.batch and self.batch.running and self.auto_start and settings and log_path:
            try:
                self.launch(settings, log_path)
                restarting = True
            except LaunchError as exc:
                self.problem = f"{message} Starting it again failed: {exc}"
        for job in self.tracker.active():
            if job.state is JobState.CANCELLING:
                self.tracker.finish(job, JobState.CANCELLED)
            elif job.state is not JobState.WAITING and job.state is not JobState.READY:
                self.tracker.fail(job, message, "sidecar_stopped", retryable=restarting)
            self.job_changed(job)

    # Jobs.

    def submit(
        self, image: bytes, params: dict, name: str, filename: str, collection: str = "", batch: str = ""
    ) -> Job:
        """Send a job, or hold it until the sidecar that is starting answers."""
        job = self.hold(image, params, name, filename, collection, batch)
        self.send_unsent()
        return job

    def hold(
        self, image: bytes, params: dict, name: str, filename: str, collection: str = "", batch: str = ""
    ) -> Job:
        job = Job(
            new_job_id(),
            name,
            collection=collection,
            batch=batch,
            state=JobState.WAITING,
            params=params,
            file=self.file,
        )
        self.unsent[job.id] = Unsent(image, params, filename)
        self.changed = True
        return self.tracker.add(job)

    def send_unsent(self) -> None:
        """Send the jobs held while there was no sidecar; fail them when none is coming."""
        if not self.unsent or (self.starting and not self.connected):
            return
        for job_id, unsent in list(self.unsent.items()):
            del self.unsent[job_id]
            job = self.tracker.get(job_id)
            if job is None or job.state is not JobState.WAITING:
                continue
            try:
                if unsent.params.get("backend", "local") != "local" and not self.online:
                    # The image would leave this computer: a batch must not outlive the artist's choice.
                    raise SidecarError("backend_unavailable", OFFLINE)
                if not self.connected:
                    raise SidecarError(
                        "sidecar_unavailable", self.problem or f"No sidecar answers at {self.endpoint}."
                    )
                client = self.ensure_client()
                client.submit(
                    unsent.image, unsent.params, job_id=job_id, filename=unsent.filename, deliver=self.deliver
                )
            except SidecarError as exc:
                self.tracker.fail(job, str(exc), exc.code, exc.retryable)
            else:
                job.state, job.started = JobState.SUBMITTED, time.monotonic()
            self.job_changed(job)

    def cancel(self, job_id: str) -> None:
        job = self.tracker.get(job_id)
        if job is None:
            return
        if job.state is JobState.WAITING:
            self.unsent.pop(job_id, None)
            self.tracker.finish(job, JobState.CANCELLED)
        elif self.tracker.cancel(job_id) and job.state is JobState.CANCELLING and self.client is not None:
            self.client.cancel(job_id)
        self.job_changed(job)

    def fetch(self, job_id: str, name: str) -> Job:
        """Ask for a past result again; it arrives as a `result` event, like a new one."""
        job = self.tracker.add(Job(job_id, name, state=JobState.SUBMITTED, file=self.file))
        self.ensure_client().fetch(job_id, deliver=self.deliver)
        self.changed = True
        return job

    def fetch_bytes(self, job: Job) -> None:
        """The sidecar's path cannot be read here (it runs elsewhere): have the GLB sent instead."""
        job.state, job.result = JobState.SUBMITTED, {}
        self.ensure_client().fetch(job.id, deliver="bytes")

    def imported(self, job: Job, objects: list[str]) -> None:
        job.objects = objects
        self.tracker.finish(job, JobState.DONE)
        self.job_changed(job)

    def file_changed(self) -> None:
        """Another .blend is open: what was asked for in the last one is kept out of it, and the batch
        sends no more images."""
        self.file += 1
        if self.batch is not None:
            self.batch.stopped = True
        self.changed = True

    def keep(self, job: Job) -> None:
        """The job's file is no longer open: its model stays in the sidecar's store, for Recent Results."""
        self.tracker.finish(job, JobState.KEPT)
        self.job_changed(job)

    def import_failed(self, job: Job, message: str) -> None:
        self.tracker.fail(job, message, "import_failed")
        self.job_changed(job)

    def update(self) -> None:
        """One tick's work, never waiting on the sidecar for long."""
        self.watch_process()
        idle = self.client is None or not self.client.active_jobs
        if self.endpoint and idle and time.monotonic() >= self.next_probe:
            self.probe()
        if self.client is not None:
            for event in self.client.poll(0.0):
                if self.estimates.take(event):
                    self.changed = True
                    continue
                job = self.tracker.apply(event)
                if job is None:
                    continue
                if job.error_code == "sidecar_lost":
                    self.info, self.problem = None, job.error
                self.job_changed(job)
        self.send_unsent()
        self.advance_batch()
        if self.connected:
            self.estimates.ask(self.client)

    def refresh_recent(self, timeout: float = 0.5) -> None:
        """The newest models, each once (as the job that made it, rather than one served from the store);
        failed jobs are passed over."""
        reply = self.ensure_client().list_jobs(timeout, RECENT_SCAN)
        models: dict[str, dict[str, Any]] = {}
        for job in reply["jobs"]:  # newest first
            key = json.dumps([job.get(name) for name in MODEL_FIELDS], sort_keys=True)
            if job.get("status") != "done":
                continue
            if key not in models or models[key].get("source_job") == job["job"]:
                models[key] = job
        self.recent = list(models.values())[:RECENT_LIMIT]
        self.total_cost = float(reply.get("total_cost") or 0.0)
        self.changed = True

    # The batch.

    def start_batch(self, batch: Batch) -> None:
        self.batch = batch
        self.changed = True
        self.advance_batch()

    def stop_batch(self) -> None:
        if self.batch is None:
            return
        self.batch.stopped = True
        for item in self.batch.in_flight():
            self.cancel(item.job)

    def advance_batch(self) -> None:
        batch = self.batch
        if batch is None:
            return
        for item in batch.to_send():
            item.tries += 1
            try:
                image = Path(item.path).read_bytes()
            except OSError as exc:
                item.state, item.message = JobState.FAILED, f"Cannot read the image: {exc.strerror or exc}."
                continue
            item.state, item.message = JobState.WAITING, ""
            params = batch.sent_params()
            item.job = self.hold(image, params, item.name, Path(item.path).name, batch=batch.name).id
        self.send_unsent()
        if not batch.running and not batch.announced:
            batch.announced = True
            cost = self.batch_cost()
            paid = f", for ${cost:.2f}" if cost else ""
            self.announce("INFO", f"Batch {batch.name}: {batch.summary()}{paid}")

    def batch_cost(self) -> float:
        """What the batch's models have cost so far, in US dollars."""
        if self.batch is None:
            return 0.0
        jobs = [job for item in self.batch.items if (job := self.tracker.get(item.job))]
        return sum(float(job.result.get("cost") or 0.0) for job in jobs)

    def batch_item(self, job: Job) -> BatchItem | None:
        if self.batch is None or job.batch != self.batch.name:
            return None
        return next((item for item in self.batch.items if item.job == job.id), None)

    def status_line(self) -> tuple[str, float | None]:
        """What Blender's status bar shows, and how far along it is (None: no bar, a sentence)."""
        batch = self.batch
        if batch is not None and batch.running:
            return f"TripoSR {batch.name}: {batch.progress_text()}", batch.finished / batch.total
        job = self.tracker.get(self.current)
        if job is not None and not job.state.finished:
            return f"TripoSR {job.name}: {job.progress_text()}", job.overall
        if self.outcome and time.monotonic() - self.outcome_at < OUTCOME_SECONDS:
            return f"TripoSR {self.outcome}", None
        return "", None

    def announce(self, level: str, sentence: str) -> None:
        self.notices.append((level, sentence))
        self.outcome, self.outcome_at = sentence, time.monotonic()

    def job_changed(self, job: Job) -> None:
        self.changed = True
        if job.id == self.current and job.state.finished and not job.announced:
            job.announced = True
            self.announce("ERROR" if job.state is JobState.FAILED else "INFO", job.outcome())
        item = self.batch_item(job)
        if item is None or self.batch is None:
            return
        if job.state is JobState.FAILED and job.retryable and not self.batch.stopped:
            # A sidecar that died is started again: the items it took go out once more, to the new one.
            again = not item.resent if job.error_code == "sidecar_stopped" else item.tries <= RETRIES
            if again:
                item.resent = item.resent or job.error_code == "sidecar_stopped"
                item.state, item.job = None, ""  # advance_batch sends it again
                return
        item.state = job.state
        if job.state is JobState.FAILED:
            item.message = job.error
        elif job.state is JobState.DONE and job.from_store:
            item.message = "from the store"
