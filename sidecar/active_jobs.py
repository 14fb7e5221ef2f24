"""The jobs that are queued or running, and the work (runs of a model) they wait for.

A job is known by its id; a run by its ticket's job id, which is what the workers' events name. Identical
jobs share one run: the registry finds the run a new job may join, by the key the run was started with.
"""

from __future__ import annotations

from collections.abc import Iterator

from .jobs import ActiveJob, Ticket, Work


class ActiveJobs:
    def __init__(self) -> None:
        self._jobs: dict[str, ActiveJob] = {}  # in the order they were accepted
        self._works: dict[str, Work] = {}  # by the ticket's job id, in the order they were queued

    def __iter__(self) -> Iterator[ActiveJob]:
        return iter(list(self._jobs.values()))

    def get(self, job: str) -> ActiveJob | None:
        return self._jobs.get(job)

    def works(self) -> list[Work]:
        return list(self._works.values())

    def work_of_event(self, ticket_job: str | None) -> Work | None:
        return self._works.get(ticket_job or "")

    def joinable(self, key: str) -> Work | None:
        """A run with this key that a new job may still wait for (one being cancelled may not)."""
        return next(
            (work for work in self._works.values() if work.key == key and not work.ticket.cancelled), None
        )

    def start(self, ticket: Ticket, key: str, lane: str) -> Work:
        work = Work(ticket, key, lane)
        self._works[ticket.job] = work
        return work

    def add(self, job: ActiveJob) -> None:
        """A job, waiting for the run it names (one it started or one it joined)."""
        job.work.members.append(job)
        self._jobs[job.id] = job

    def remove(self, job: ActiveJob) -> None:
        """The job has ended; its run goes once no job waits for it."""
        work = job.work
        work.members.remove(job)
        del self._jobs[job.id]
        if not work.members:
            del self._works[work.ticket.job]

    def queue_length(self) -> int:
        """Runs waiting for a worker (jobs that joined a run are not counted)."""
        return sum(work.queued for work in self._works.values())

    def position(self, job: ActiveJob) -> int | None:
        """1 for the run that goes next on its backend; None for one that runs."""
        if not job.queued:
            return None
        queued = [work for work in self._works.values() if work.queued and work.lane == job.work.lane]
        return queued.index(job.work) + 1

    def running(self) -> str | None:
        """The id of the (first) job whose run is running, or None."""
        return next((job.id for job in self._jobs.values() if not job.queued), None)
