"""Where jobs run: a lane per backend, the keys their results are stored under, and whether Replicate can be
used here (it cannot without the package or a token, nor once Replicate has refused the token)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .backends import replicate_settings
from .backends.base import Backend
from .backends.local import LocalBackend
from .backends.replicate_settings import ReplicateSettings
from .jobs import Ticket
from .params import JobParams
from .pipeline import STAGES
from .worker import Lane

log = logging.getLogger(__name__)


class Routing:
    def __init__(
        self,
        local: LocalBackend,
        replicate: ReplicateSettings,
        max_image_pixels: int,
        make_lane: Callable[[Backend, int], Lane],
    ):
        self.local = local
        self.replicate_models = replicate.models
        self._concurrency = replicate.concurrency
        self._lanes = {"local": make_lane(local, 1)}
        token = replicate_settings.environment_token()
        # Why replicate jobs are refused here (an error code and a sentence), or None.
        self.replicate_refusal = replicate_settings.refusal(token)
        if self.replicate_refusal is None:
            from .backends.replicate import ReplicateBackend  # needs the optional `replicate` package

            backend = ReplicateBackend(replicate, token, max_image_pixels)
            self._lanes["replicate"] = make_lane(backend, replicate.concurrency)

    @property
    def replicate_usable(self) -> bool:
        return self.replicate_refusal is None

    def refuse_replicate(self, code: str, message: str) -> None:
        """Replicate refused the token: no more jobs go there until the sidecar restarts with another."""
        if self.replicate_usable:
            log.warning("Replicate is unusable from now on: %s", message)
            self.replicate_refusal = (code, message)

    def put(self, ticket: Ticket, lane: str) -> None:
        self._lanes[lane].put(ticket)

    # What jobs make, and where it is found again.

    def cache_keys(self, params: JobParams, image_sha256: str) -> list[str]:
        """The keys of the stored results that may answer a job, its own first: an `auto` job takes a
        Replicate result too, as it would end up there."""
        local = params.cache_key(image_sha256, self.local.identity)
        remote = self.replicate_models[params.replicate_model].cache_key(
            image_sha256, params.generation, params.assets
        )
        return {"local": [local], "replicate": [remote], "auto": [local, remote]}[params.backend]

    def identity(self, params: JobParams, backend: str) -> str:
        if backend == "local":
            return self.local.identity
        return self.replicate_models[params.replicate_model].identity

    # What `hello` says.

    @property
    def backends(self) -> list[str]:
        return ["local", "replicate"] if self.replicate_usable else ["local"]

    @property
    def stages(self) -> list[str]:
        cloud = replicate_settings.STAGES if self.replicate_usable else ()
        return list(dict.fromkeys([*STAGES, *cloud]))

    def replicate_fields(self) -> dict[str, Any]:
        code, problem = self.replicate_refusal or (None, None)
        return {
            "available": self.replicate_usable,
            "problem_code": code,
            "problem": problem,
            "models": list(self.replicate_models),
            "concurrency": self._concurrency,
        }

    # The threads.

    def start(self) -> None:
        for lane in self._lanes.values():
            lane.start()

    def stop(self) -> None:
        for lane in self._lanes.values():
            lane.stop()

    def all_alive(self) -> bool:
        return all(lane.all_alive() for lane in self._lanes.values())

    def any_alive(self) -> bool:
        return any(lane.any_alive() for lane in self._lanes.values())
