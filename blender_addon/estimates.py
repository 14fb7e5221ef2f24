"""The panel's estimates ("≈ 40 s here · ≈ 31 s, $0.04 on Replicate"), asked of the sidecar without waiting.

Each subject (the image, the batch folder) names the parameters and image count it wants an estimate for. A
subject is asked again when those change, and every REFRESH_SECONDS while shown, as the sidecar learns from
the jobs it runs; an estimate for other settings than the panel's is not shown.
"""

from __future__ import annotations

import json
import time
from typing import Any

# How often a shown estimate is asked again, and how soon after a change of settings (a dragged slider
# changes them many times a second).
REFRESH_SECONDS = 10.0
MIN_ASK_SECONDS = 0.5


class Estimates:
    def __init__(self) -> None:
        self._wanted: dict[str, tuple[str, dict[str, Any], int]] = {}  # subject -> (key, params, count)
        self._known: dict[str, tuple[str, dict[str, Any], float]] = {}  # subject -> (key, reply, when)
        self._asked: dict[str, tuple[str, str]] = {}  # request id -> (subject, key)
        self._asked_at = 0.0

    def want(self, subject: str, params: dict[str, Any], count: int) -> None:
        key = json.dumps([params, count], sort_keys=True)
        self._wanted[subject] = (key, params, count)

    def drop(self, subject: str) -> None:
        self._wanted.pop(subject, None)

    def get(self, subject: str) -> dict[str, Any] | None:
        """The estimate for what the subject wants now, or None until the sidecar has answered."""
        wanted, known = self._wanted.get(subject), self._known.get(subject)
        return known[1] if wanted and known and known[0] == wanted[0] else None

    def ask(self, client: Any) -> None:
        """Ask for what is missing or old: at most one request per subject in flight."""
        now = time.monotonic()
        if now - self._asked_at < MIN_ASK_SECONDS:
            return
        in_flight = {subject for subject, _key in self._asked.values()}
        for subject, (key, params, count) in self._wanted.items():
            known = self._known.get(subject)
            fresh = known is not None and known[0] == key and now - known[2] < REFRESH_SECONDS
            if subject in in_flight or fresh:
                continue
            self._asked[client.ask("estimate", params=params, count=count)] = (subject, key)
            self._asked_at = now

    def take(self, event: Any) -> bool:
        """Keep the reply to one of our requests (an error one too: it is not asked again until
        REFRESH_SECONDS have passed); False for any other event."""
        asked = self._asked.pop(event.header.get("request_id"), None)
        if asked is None:
            return False
        subject, key = asked
        reply = event.header if event.type == "estimate" else {"error": event.header.get("message", "")}
        self._known[subject] = (key, reply, time.monotonic())
        return True

    def forget(self) -> None:
        """The sidecar has gone: what it said, and what it was asked, no longer holds."""
        self._known.clear()
        self._asked.clear()
