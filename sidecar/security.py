"""Who may reach the sidecar: loopback by default, CurveZMQ keys for any other address; and what such a
sidecar keeps to itself (its paths)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import zmq.auth

KEY_NAME = "sidecar"  # keygen writes sidecar.key (public) and sidecar.key_secret


class SecurityError(Exception):
    """The endpoint or the keys cannot be used; the message says what to change."""


@dataclass(frozen=True)
class CurveKeys:
    public: bytes
    secret: bytes


def endpoint_host(endpoint: str) -> str:
    """The host of a `tcp://HOST:PORT` endpoint, brackets of an IPv6 address removed."""
    host, colon, port = endpoint.removeprefix("tcp://").rpartition(":")
    if not endpoint.startswith("tcp://") or not colon or not host or not port:
        raise SecurityError(
            f"{endpoint!r} is not an endpoint of the form tcp://HOST:PORT, e.g. tcp://127.0.0.1:5571."
        )
    return host.removeprefix("[").removesuffix("]")


def is_loopback(endpoint: str) -> bool:
    host = endpoint_host(endpoint)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name or a host name: reachable from elsewhere
        return False


def check_bind(endpoint: str, keys: CurveKeys | None) -> None:
    if keys is None and not is_loopback(endpoint):
        raise SecurityError(
            f"Listening on {endpoint} would let other machines reach the sidecar, which needs CurveZMQ keys. "
            "Create them with `triposr-sidecar keygen DIR` and pass "
            "--curve-secret-key DIR/sidecar.key_secret, or bind to 127.0.0.1."
        )


def load_keys(path: Path) -> CurveKeys:
    """The key pair from a secret key file as `keygen` (zmq.auth.create_certificates) writes it."""
    public, secret = _certificate(path)
    if secret is None:
        raise SecurityError(
            f"{path} holds only a public key; pass the secret key file ({KEY_NAME}.key_secret) keygen wrote."
        )
    return CurveKeys(public, secret)


def load_public_key(path: Path) -> bytes:
    """The public key in a key file `keygen` wrote (the public one, or the secret one, which holds it too)."""
    return _certificate(path)[0]


def _certificate(path: Path) -> tuple[bytes, bytes | None]:
    try:
        return zmq.auth.load_certificate(path)
    except OSError as exc:
        raise SecurityError(f"The key file {path} cannot be read: {exc.strerror or exc}.") from exc
    except ValueError as exc:
        raise SecurityError(f"The key file {path} is not a ZeroMQ certificate: {exc}.") from exc


def check_peers(endpoints: list[str], key: bytes | None) -> None:
    """A peer beyond this machine is reached with CurveZMQ only: its public key is needed."""
    for endpoint in endpoints:
        if key is None and not is_loopback(endpoint):
            raise SecurityError(
                f"The peer {endpoint} is reached over the network, which needs CurveZMQ: pass its public key "
                "(the sidecar.key file its keygen wrote) with --peer-key."
            )


def write_keys(folder: Path) -> tuple[Path, Path]:
    """A new key pair in `folder`, the secret one readable by its owner only: (public file, secret file)."""
    public_file, secret_file = folder / f"{KEY_NAME}.key", folder / f"{KEY_NAME}.key_secret"
    taken = [str(path) for path in (public_file, secret_file) if path.exists()]
    if taken:
        raise SecurityError(f"{' and '.join(taken)} already exist; remove them or choose another folder.")
    folder.mkdir(parents=True, exist_ok=True)
    previous = os.umask(0o077)  # the secret file must never exist readable by others, not even briefly
    try:
        zmq.auth.create_certificates(folder, KEY_NAME)
    finally:
        os.umask(previous)
    return public_file, secret_file


def path_scrubber(folders: dict[Path, str]) -> Callable[[bytes], bytes]:
    """For a sidecar other machines reach: replaces each of the server's folders (as given, expanded and
    resolved) in outgoing JSON headers by its label, so that no message shows where things are kept."""
    spellings: dict[str, str] = {}
    for folder, label in folders.items():
        for spelling in (folder, folder.expanduser(), folder.expanduser().resolve()):
            if spelling.is_absolute() and len(spelling.parts) > 1:
                spellings.setdefault(str(spelling), label)
    # As JSON writes them (backslashes doubled), longest first, so that a folder inside another goes first;
    # each only where a path goes on or ends, so that /home/me is not found in /home/melanie.
    labels = {
        json.dumps(text)[1:-1].encode(): json.dumps(label)[1:-1].encode() for text, label in spellings.items()
    }
    if not labels:
        return lambda header: header
    pattern = re.compile(
        b"(" + b"|".join(map(re.escape, sorted(labels, key=len, reverse=True))) + rb')(?=[/\\"\s:.,;)\']|$)'
    )
    return lambda header: pattern.sub(lambda match: labels[match.group(1)], header)
