"""A job's terminal message as a client receives it, made from what the store knows of the job."""

from __future__ import annotations

from typing import Any

from shared.protocol import ProtocolError, encode, error_fields

from .delivery import Delivery, Frames
from .store import JobRecord, Store, cost_estimated


def charge(facts: dict[str, Any]) -> dict[str, Any]:
    """What `error` and `cancelled` add about a run that was paid for (a job's record, or a worker's report
    of the run): its cost, whether our clock reckoned it, the prediction's id."""
    cost, metrics = facts.get("cost"), facts.get("metrics")
    if cost is None:
        return {}
    return {
        "cost": cost,
        "cost_estimated": cost_estimated(cost, metrics),
        "prediction": facts.get("prediction"),
    }


def cancelled(job: str, **charged: Any) -> Frames:
    return encode("cancelled", job, **charged)


def error(job: str, code: str, message: str, placement: dict | None = None, **charged: Any) -> Frames:
    """A job's `error`; one that had been placed says where (`placement`), as its result would have."""
    placed = {"placement": placement} if placement else {}
    return encode("error", job, **error_fields(code, message), **placed, **charged)


def result_missing(job: str) -> ProtocolError:
    return ProtocolError(
        "result_missing",
        f"The model of job {job} is no longer in the sidecar's store: its limits (serve --store-max-gb, "
        "--store-max-days) pruned it, or it was deleted. Submit the job again to make it anew.",
    )


class Outcomes:
    """Results and the terminal messages of finished jobs, sent through the clients' outboxes."""

    def __init__(self, store: Store, delivery: Delivery, paths: bool):
        self._store = store
        self._delivery = delivery
        self._paths = paths  # whether `deliver: "path"` is honoured: only clients on this machine can use one

    def send_result(self, peer: bytes, record: JobRecord, deliver: str, glb: bytes, from_store: bool) -> None:
        """A result, with its model at hand: should it have to wait, it is read from the store again."""
        self._delivery.result(
            peer,
            record.id,
            self._result(record, deliver, glb, from_store),
            lambda: self._again(record.id, deliver, from_store),
        )

    def send_stored(self, peer: bytes, record: JobRecord, deliver: str) -> None:
        """A finished job's terminal message from the store; `result_missing` when its model was pruned."""
        if record.status == "cancelled":
            self._delivery.event(peer, record.id, cancelled(record.id, **charge(vars(record))))
        elif record.status == "failed":
            code, message = record.error_code, record.error_message
            frames = error(record.id, code, message, record.placement, **charge(vars(record)))
            self._delivery.event(peer, record.id, frames)
        elif not self._store.has_result(record):
            raise result_missing(record.id)
        else:
            self._store.touch(record)
            self.send_result(peer, record, deliver, self._model(record, deliver), from_store=True)

    def _again(self, job: str, deliver: str, from_store: bool) -> Frames:
        record = self._store.get(job)
        try:
            if record is not None and self._store.has_result(record):
                return self._result(record, deliver, self._model(record, deliver), from_store)
        except FileNotFoundError:  # pruned, or deleted, in between
            pass
        failure = result_missing(job)
        return error(job, failure.code, str(failure))

    def _model(self, record: JobRecord, deliver: str) -> bytes | None:
        return None if self._by_path(deliver) else self._store.result_path(record).read_bytes()

    def _result(self, record: JobRecord, deliver: str, glb: bytes | None, from_store: bool) -> Frames:
        fields = {**record.describe(), "from_store": from_store}
        if self._by_path(deliver):
            return encode("result", record.id, path=str(self._store.result_path(record).resolve()), **fields)
        return encode("result", record.id, payloads={"glb": glb}, **fields)

    def _by_path(self, deliver: str) -> bool:
        return deliver == "path" and self._paths
