"""Where jobs run: a lane per backend (local, Replicate, each peer sidecar), the keys their results are stored
under, and which lanes can take jobs now (Replicate cannot without the package or a token, nor once Replicate
has refused the token; a peer cannot while it does not answer)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from .backends import replicate_settings
from .backends.base import Backend
from .backends.local import LocalBackend
from .backends.peer import PeerBackend
from .backends.replicate_settings import ReplicateSettings
from .jobs import Ticket
from .lanes import kind
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
        make_lane: Callable[[str, Backend, int], Lane],
        peers: Sequence[PeerBackend] = (),
    ):
        self.local = local
        self.replicate_models = replicate.models
        self._concurrency = replicate.concurrency
        self._lanes = {"local": make_lane("local", local, 1)}
        self._peers = {peer.lane: peer for peer in peers}
        for peer in peers:  # a peer's model runs one job at a time, as ours does
            self._lanes[peer.lane] = make_lane(peer.lane, peer, 1)
        token = replicate_settings.environment_token()
        # Why replicate jobs are refused here (an error code and a sentence), or None.
        self.replicate_refusal = replicate_settings.refusal(token)
        if self.replicate_refusal is None:
            from .backends.replicate import ReplicateBackend  # needs the optional `replicate` package

            backend = ReplicateBackend(replicate, token, max_image_pixels)
            self._lanes["replicate"] = make_lane("replicate", backend, replicate.concurrency)

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

    def open_lanes(self) -> list[Lane]:
        """The lanes a policy may place a job in now; with none, the local one, so that jobs end with its
        model's error instead of waiting for ever."""
        return [lane for name, lane in self._lanes.items() if self._open(name)] or [self._lanes["local"]]

    def _open(self, lane: str) -> bool:
        if lane == "local":
            return self.local.model_state.state != "failed"
        if lane == "replicate":
            return self.replicate_usable
        return self._peers[lane].answering

    # What jobs make, and where it is found again.

    def cache_keys(self, params: JobParams, image_sha256: str) -> list[str]:
        """The keys of the stored results that may answer a job, its own first: an `auto` job takes a
        Replicate result too, as it would end up there; a policy job any lane's."""
        local = params.cache_key(image_sha256, self.local.identity)
        remote = self.replicate_models[params.replicate_model].cache_key(
            image_sha256, params.generation, params.assets
        )
        if params.policy:
            return [local, remote, *(params.cache_key(image_sha256, lane) for lane in self._peers)]
        return {"local": [local], "replicate": [remote], "auto": [local, remote]}[params.backend]

    def cache_key(self, params: JobParams, image_sha256: str, lane: str) -> str:
        """The key a result made in `lane` is stored under."""
        if lane == "replicate":
            model = self.replicate_models[params.replicate_model]
            return model.cache_key(image_sha256, params.generation, params.assets)
        return params.cache_key(image_sha256, self.identity(params, lane))

    def identity(self, params: JobParams, lane: str) -> str:
        """The model a job makes in a lane: a peer's weights are its own (its result names them), and a
        policy job not yet placed counts as a local one."""
        if lane == "replicate":
            return self.replicate_models[params.replicate_model].identity
        return lane if kind(lane) == "peer" else self.local.identity

    # What `hello` says.

    @property
    def backends(self) -> list[str]:
        """The backends that can take jobs: a peer sidecar counts while one answers."""
        usable = ["local", "replicate"] if self.replicate_usable else ["local"]
        return [*usable, "peer"] if any(peer.answering for peer in self._peers.values()) else usable

    def peer_fields(self) -> list[dict[str, Any]]:
        return [peer.describe() for peer in self._peers.values()]

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
