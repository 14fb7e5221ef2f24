"""`submit`: send images to a running sidecar and write the models it returns."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import zmq.auth
from tqdm import tqdm

from shared.client import Event, SidecarClient, SidecarError
from shared.protocol import DEFAULT_ENDPOINT

from ..fileio import write_atomically
from ..params import BACKENDS
from ..pipeline import STAGES
from .generate import (
    add_asset_options,
    add_generation_options,
    asset_options,
    generation_params,
    output_paths,
)


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "submit",
        help="send images to a running sidecar",
        description="Send each image to a running sidecar (`triposr-sidecar serve`) and write "
        "DIR/<image name>.glb as the results arrive.",
    )
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the GLBs")
    parser.add_argument(
        "--endpoint", default=DEFAULT_ENDPOINT, help="the sidecar's address (default: %(default)s)"
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, default="local", help="where the model runs (default: local)"
    )
    parser.add_argument(
        "--server-key",
        metavar="KEY",
        help="the sidecar's CurveZMQ public key: the 40 characters keygen printed, or its sidecar.key file",
    )
    parser.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="give up on a job when the sidecar sends nothing about it for this long (default: %(default)s)",
    )
    add_generation_options(parser)
    add_asset_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    params = {"backend": args.backend, **asdict(generation_params(args)), **asdict(asset_options(args))}
    key = server_key(args.server_key) if args.server_key else None
    with SidecarClient(
        args.endpoint, server_public_key=key, heartbeat_timeout=args.heartbeat_timeout
    ) as client:
        try:
            client.hello(timeout=5.0)
        except SidecarError as exc:
            print(f"error: {exc} Start one with `triposr-sidecar serve`.", file=sys.stderr)
            return 1
        args.out.mkdir(parents=True, exist_ok=True)
        failed = 0
        jobs: dict[str, JobView] = {}
        for image, target in zip(args.images, output_paths(args.images, args.out), strict=True):
            try:
                data = image.read_bytes()
            except OSError as exc:
                failed += 1
                print(f"error: {image}: cannot be read ({exc.strerror})")
                continue
            jobs[client.submit(data, params, filename=image.name)] = JobView(image, target)
        try:
            while client.active_jobs:
                for event in client.poll(timeout=1.0):
                    if event.job in jobs:
                        failed += not jobs[event.job].show(event)
        except KeyboardInterrupt:
            for job in client.active_jobs:
                client.cancel(job)
            raise
    if failed:
        print(f"{failed} of {len(args.images)} image(s) failed")
    return 1 if failed else 0


class JobView:
    """One submitted image: its progress bar while it runs, and a line when it ends."""

    def __init__(self, image: Path, target: Path):
        self.image = image
        self.target = target
        self.bar: tqdm | None = None

    def show(self, event: Event) -> bool:
        """Show the event; False when the job has failed."""
        header = event.header
        if event.type == "progress" and header["stage"] in STAGES:
            if self.bar is None:
                # `disable=None` keeps the bar off when the output is not a terminal.
                self.bar = tqdm(
                    total=len(STAGES), desc=self.image.name, unit="stage", leave=False, disable=None
                )
            self.bar.set_postfix_str(header["stage"], refresh=False)
            self.bar.update(round(STAGES.index(header["stage"]) + header["fraction"], 2) - self.bar.n)
        elif event.type == "result":
            self._close_bar()
            write_atomically(self.target, event.payload)
            source = ", from the store" if header["from_store"] else ""
            print(
                f"{self.image} -> {self.target} ({header['vertices']:,} vertices, {header['faces']:,} faces, "
                f"{header['total_seconds']:.2f} s on {header['device']}{source})"
            )
        elif event.type in ("error", "cancelled"):
            self._close_bar()
            print(f"error: {self.image}: {header.get('message', 'cancelled')}")
            return False
        return True

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()


def server_key(value: str) -> str | bytes:
    """The key itself, or the one in a public key file."""
    path = Path(value).expanduser()
    return zmq.auth.load_certificate(path)[0] if path.is_file() else value
