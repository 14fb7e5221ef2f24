"""Delivery: one outbox per client, so that a client that reads slowly, or not at all, loses no terminal
message and costs the sidecar little memory.

The ROUTER socket refuses (instead of silently dropping) a message for a client whose ZeroMQ queue is full or
who is not connected, and what it refuses waits in that client's outbox:

- a progress report replaces an older one of the same job that is still waiting: only the latest matters;
- `accepted`, terminal messages and replies wait until they can go, in the order they were made. A result's
  model is not held in memory while it waits: it is read from the store again when it goes;
- at most MAX_WAITING_REPLIES replies wait; a client sending more requests than it reads loses the oldest;
- an outbox whose client has been disconnected for ABSENT_SECONDS is dropped (`fetch` recovers its jobs).

At most PAYLOAD_BYTES_IN_FLIGHT of models per client sit in ZeroMQ's queue at once (one model always may).
"""

from __future__ import annotations

import enum
import itertools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

import zmq

from shared.protocol import encode, error_fields

log = logging.getLogger(__name__)

# Messages ZeroMQ queues for one client before the sidecar keeps the rest in its outbox.
SEND_HWM = 64
PAYLOAD_BYTES_IN_FLIGHT = 16 * 1024**2
MAX_WAITING_REPLIES = 64
ABSENT_SECONDS = 600.0

Frames = list  # a message as `shared.protocol.encode` makes it: the header, then the payloads


class Kind(enum.Enum):
    PROGRESS = "progress"  # replaced by a newer one of the same job
    REPLY = "reply"  # the newest MAX_WAITING_REPLIES wait
    EVENT = "event"  # waits for as long as the client may come back


@dataclass(eq=False)
class Letter:
    kind: Kind
    job: str | None
    frames: Frames | None  # None while a result waits without its model in memory
    payload_bytes: int = 0
    remake: Callable[[], Frames] | None = None  # the frames again, from the store


class Blocked(enum.Enum):
    NO = "no"
    FULL = "full"  # the client is connected, and its queue is full: try again soon
    ABSENT = "absent"  # the client is not connected: try again now and then


class Outbox:
    """What waits for one client, oldest first."""

    def __init__(self) -> None:
        self._letters: OrderedDict[int, Letter] = OrderedDict()
        self._serial = itertools.count()
        self._progress: dict[str, int] = {}  # job -> its progress report that waits
        self._replies: deque[int] = deque()  # the replies that wait, oldest first
        self._in_flight: list[tuple[zmq.MessageTracker, int]] = []  # models ZeroMQ still holds, and sizes
        self.blocked = Blocked.NO
        self.absent_since: float | None = None
        self.held = 0  # letters that had to wait since the outbox was last empty
        self.replaced = 0  # progress reports replaced meanwhile

    def __bool__(self) -> bool:
        return bool(self._letters)

    def add(self, letter: Letter) -> None:
        key = next(self._serial)
        if letter.kind is Kind.PROGRESS:
            older = self._progress.pop(letter.job, None)
            if older is not None:
                del self._letters[older]
                self.replaced += 1
            self._progress[letter.job] = key
        elif letter.job is not None:
            self._progress.pop(letter.job, None)  # a later progress must not overtake this letter
        if letter.kind is Kind.REPLY:
            self._replies.append(key)
            if len(self._replies) > MAX_WAITING_REPLIES:
                del self._letters[self._replies.popleft()]
        self._letters[key] = letter
        if self.blocked is not Blocked.NO:
            self.held += 1

    def flush(self, socket: zmq.Socket, peer: bytes, scrub: Callable[[bytes], bytes]) -> Blocked:
        """Send what the client's queue takes, oldest first; say why the rest waits."""
        self.holds_models()  # forget the models ZeroMQ has let go
        while self._letters:
            key, letter = next(iter(self._letters.items()))
            if (
                letter.payload_bytes
                and self._in_flight
                and self._bytes_in_flight() + letter.payload_bytes > (PAYLOAD_BYTES_IN_FLIGHT)
            ):
                return self._wait(Blocked.FULL)
            try:  # the routing id goes first: ZeroMQ refuses it when the message cannot be routed now
                socket.send(peer, zmq.SNDMORE | zmq.NOBLOCK)
            except zmq.Again:
                return self._wait(Blocked.FULL)
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EHOSTUNREACH:
                    raise
                return self._wait(Blocked.ABSENT)
            frames = letter.frames if letter.frames is not None else _remade(letter)
            tracker = socket.send_multipart(
                [scrub(frames[0]), *frames[1:]], zmq.NOBLOCK, copy=False, track=bool(letter.payload_bytes)
            )
            if letter.payload_bytes:
                self._in_flight.append((tracker, letter.payload_bytes))
            del self._letters[key]
            if letter.kind is Kind.REPLY:
                self._replies.popleft()  # replies leave in order: this was the oldest
            elif self._progress.get(letter.job) == key:
                del self._progress[letter.job]
        self.blocked, self.absent_since = Blocked.NO, None
        return Blocked.NO

    def _wait(self, blocked: Blocked) -> Blocked:
        """Keep what could not go, without the models: they are read from the store when they go."""
        if self.blocked is Blocked.NO:
            self.held, self.replaced = len(self._letters), 0
        for letter in self._letters.values():
            if letter.remake is not None:
                letter.frames = None
        if blocked is Blocked.ABSENT and self.absent_since is None:
            self.absent_since = time.monotonic()
        elif blocked is Blocked.FULL:
            self.absent_since = None
        self.blocked = blocked
        return blocked

    def _bytes_in_flight(self) -> int:
        return sum(size for _, size in self._in_flight)

    def holds_models(self) -> bool:
        """Whether ZeroMQ still holds models sent to this client: the outbox must stay to count them."""
        self._in_flight = [(tracker, size) for tracker, size in self._in_flight if not tracker.done]
        return bool(self._in_flight)


def _remade(letter: Letter) -> Frames:
    """A waiting result's frames, read again; its routing id has gone out, so a message must follow."""
    try:
        return letter.remake()
    except Exception:
        log.exception("The result of job %s could not be read again", letter.job)
        message = "The sidecar could not read the job's model from its store; its log has the details."
        return encode("error", letter.job, **error_fields("internal", message))


class Delivery:
    """The sending side of the ROUTER socket: every message to a client goes through its outbox."""

    def __init__(self, socket: zmq.Socket, scrub: Callable[[bytes], bytes] | None = None):
        """`scrub` rewrites each header on its way out (a sidecar other machines reach hides its paths)."""
        socket.router_mandatory = True
        socket.sndhwm = SEND_HWM
        self._socket = socket
        self._scrub = scrub or (lambda header: header)
        self._outboxes: dict[bytes, Outbox] = {}

    def reply(self, peer: bytes, frames: Frames) -> None:
        self._post(peer, Letter(Kind.REPLY, None, frames))

    def event(self, peer: bytes, job: str, frames: Frames) -> None:
        """`accepted` or a terminal message without a model: kept until it is sent."""
        self._post(peer, Letter(Kind.EVENT, job, frames))

    def progress(self, peer: bytes, job: str, frames: Frames) -> None:
        self._post(peer, Letter(Kind.PROGRESS, job, frames))

    def result(self, peer: bytes, job: str, frames: Frames, remake: Callable[[], Frames]) -> None:
        """A terminal message with a model: `remake` makes it again from the store if it has to wait."""
        size = sum(len(frame) for frame in frames[1:])
        self._post(peer, Letter(Kind.EVENT, job, frames, size, remake if size else None))

    @property
    def retrying(self) -> bool:
        """Whether a connected client's queue is full, so that the loop should try again soon."""
        return any(outbox.blocked is Blocked.FULL for outbox in self._outboxes.values())

    def flush(self) -> None:
        """Try again for every client something waits for; forget clients away for too long."""
        now = time.monotonic()
        for peer, outbox in list(self._outboxes.items()):
            self._flush(peer, outbox)
            if outbox.absent_since is not None and now - outbox.absent_since > ABSENT_SECONDS:
                log.warning(
                    "Dropped what waited for a client that has been away for %.0f s; it may fetch its jobs",
                    now - outbox.absent_since,
                )
                del self._outboxes[peer]

    def _post(self, peer: bytes, letter: Letter) -> None:
        outbox = self._outboxes.setdefault(peer, Outbox())
        outbox.add(letter)
        self._flush(peer, outbox)

    def _flush(self, peer: bytes, outbox: Outbox) -> None:
        if outbox.flush(self._socket, peer, self._scrub) is not Blocked.NO:
            return
        if outbox.held:
            log.info(
                "A client that had stopped reading has its %d waiting message(s); %d older progress "
                "report(s) were replaced by newer ones",
                outbox.held,
                outbox.replaced,
            )
            outbox.held = 0
        if not outbox.holds_models():
            del self._outboxes[peer]
