"""`keygen`: a CurveZMQ key pair, for a sidecar that listens beyond this machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import zmq.auth

from ..security import SecurityError, write_keys


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "keygen",
        help="create the keys a sidecar needs to listen beyond this machine",
        description="Write DIR/sidecar.key (public) and DIR/sidecar.key_secret (private) for CurveZMQ.",
    )
    parser.add_argument("folder", type=Path, metavar="DIR")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        public_file, secret_file = write_keys(args.folder)
    except SecurityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    public_key, _ = zmq.auth.load_certificate(public_file)
    print(f"Secret key: {secret_file} (keep it private; serve with --curve-secret-key {secret_file})")
    print(f"Public key: {public_file}")
    print(f"Clients need the public key: {public_key.decode()}")
    return 0
