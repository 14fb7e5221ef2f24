"""What a backend is to the worker: something that turns a ticket into a GLB and says how it went."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ..clock import ProgressCallback
from ..jobs import Ticket


@dataclass(frozen=True)
class Outcome:
    """A finished job: the GLB in our frame, and the metadata its `result` carries."""

    glb: bytes
    vertices: int
    faces: int
    device: str  # where it ran: the local device, or the hardware of the Replicate model
    model: str  # which model made it (weights and precision, or Replicate model and version)
    stage_seconds: dict[str, float]
    peak_rss_bytes: int | None = None
    peak_device_bytes: int | None = None
    cost: float | None = None  # US dollars, for a paid backend
    metrics: dict[str, float] | None = None  # as Replicate reports them, `predict_time` among them
    prediction: str | None = None  # the prediction's id on Replicate

    def fields(self) -> dict[str, Any]:
        """The `result` event's header fields (the GLB travels as its payload)."""
        fields = asdict(self)
        del fields["glb"]
        fields["stage_seconds"] = {stage: round(seconds, 4) for stage, seconds in self.stage_seconds.items()}
        fields["glb_bytes"] = len(self.glb)
        return fields


class Backend(Protocol):
    name: str  # as `params.backend` names it

    def prepare(self) -> None:
        """Called on each of the backend's threads before its first job (the local model loads here)."""

    def run(self, ticket: Ticket, report: ProgressCallback) -> Outcome:
        """Make the ticket's model; raise JobFailed (or an exception `describe_failure` knows) if it cannot.

        `report` raises JobCancelled once the job is cancelled; a backend that waits on something else
        checks `ticket` itself.
        """
        ...
