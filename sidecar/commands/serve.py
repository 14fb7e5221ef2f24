"""`serve`: the sidecar service the Blender add-on and `submit` talk to."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from shared.protocol import DEFAULT_ENDPOINT

from ..admission import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_QUEUE_SIZE, Limits
from ..backends.models import DEFAULT_PRICE_PER_SECOND, ModelConfigError, load_models
from ..backends.peer import DEFAULT_TIMEOUT as DEFAULT_PEER_TIMEOUT
from ..backends.replicate_settings import (
    DEFAULT_CONCURRENCY,
    DEFAULT_JOB_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
    TOKEN_VARIABLE,
    ReplicateSettings,
)
from ..retention import DEFAULT_MAX_DAYS, DEFAULT_MAX_GB, StoreLimits
from ..security import SecurityError, check_peers, load_keys, load_public_key
from ..server import Server, ServerConfig, StartupError
from ..store import StoreError
from ..triposr.preprocess import DEFAULT_MAX_PIXELS
from .options import add_data_dir_option, add_model_options

EXIT_CANNOT_START = 2


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "serve",
        help="run the service the Blender add-on talks to",
        description="Load the model once and run jobs sent over ZeroMQ (see docs/protocol.md).",
    )
    parser.add_argument(
        "--bind",
        default=DEFAULT_ENDPOINT,
        metavar="ENDPOINT",
        help=f"where to listen (default: {DEFAULT_ENDPOINT}); addresses beyond loopback need CurveZMQ keys",
    )
    add_model_options(parser)
    add_data_dir_option(parser, "where jobs.sqlite, the results and the runs estimates learn from are kept")
    parser.add_argument(
        "--store-max-gb",
        type=positive_float,
        default=DEFAULT_MAX_GB,
        metavar="GB",
        help="disk the stored models may take; the least recently used go first (default: %(default)s)",
    )
    parser.add_argument(
        "--store-max-days",
        type=positive_float,
        default=DEFAULT_MAX_DAYS,
        metavar="DAYS",
        help="how long a job unused is kept in the store (default: %(default)s)",
    )
    parser.add_argument(
        "--parent-pid",
        type=int,
        metavar="PID",
        help="exit once this process, and every process a client on this machine named in hello, has exited",
    )
    parser.add_argument(
        "--queue-size",
        type=positive_int,
        default=DEFAULT_QUEUE_SIZE,
        help="jobs that may wait for the model; more are refused (default: %(default)s)",
    )
    parser.add_argument(
        "--max-image-bytes",
        type=positive_int,
        default=DEFAULT_MAX_IMAGE_BYTES,
        help="largest image file accepted (default: %(default)s)",
    )
    parser.add_argument(
        "--max-image-pixels",
        type=positive_int,
        default=DEFAULT_MAX_PIXELS,
        help="largest image accepted, width times height (default: %(default)s)",
    )
    parser.add_argument(
        "--curve-secret-key",
        type=Path,
        metavar="FILE",
        help="encrypt and authenticate with CurveZMQ, using the secret key file `keygen` wrote",
    )
    parser.add_argument(
        "--max-local-resolution",
        type=positive_int,
        metavar="N",
        help="the highest resolution this machine's memory runs locally: larger jobs fail as out of memory "
        "at once, and `auto` jobs move to Replicate (default: no limit)",
    )
    replicate = parser.add_argument_group(
        "Replicate", f"The replicate and auto backends; they need {TOKEN_VARIABLE} in the environment."
    )
    replicate.add_argument(
        "--replicate-models",
        type=Path,
        metavar="FILE",
        help="a JSON file of more Replicate models, or other settings for the built-in ones "
        "(see sidecar/backends/models.py)",
    )
    replicate.add_argument(
        "--replicate-concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help="predictions in flight at once (default: %(default)s)",
    )
    replicate.add_argument(
        "--replicate-price-per-second",
        type=non_negative_float,
        default=DEFAULT_PRICE_PER_SECOND,
        metavar="DOLLARS",
        help="what a second of prediction time costs, for models that do not name their own price "
        "(default: %(default)s, an Nvidia A100 80GB)",
    )
    replicate.add_argument(
        "--replicate-timeout",
        type=positive_float,
        default=DEFAULT_REQUEST_TIMEOUT,
        metavar="SECONDS",
        help="how long Replicate may take to answer a request (default: %(default)s)",
    )
    replicate.add_argument(
        "--replicate-job-timeout",
        type=positive_float,
        default=DEFAULT_JOB_TIMEOUT,
        metavar="SECONDS",
        help="how long a prediction may take, cold start included, before it is cancelled "
        "(default: %(default)s)",
    )
    peers = parser.add_argument_group(
        "Peers",
        "Other sidecars (a studio's GPU machines) that run jobs for this one: the fastest and cheapest "
        "policies place jobs there, as they do locally and on Replicate.",
    )
    peers.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="ENDPOINT",
        help="a sidecar to hand jobs to, tcp://HOST:PORT; give it once for each peer",
    )
    peers.add_argument(
        "--peer-key",
        type=Path,
        metavar="FILE",
        help="the peers' CurveZMQ public key (the sidecar.key file their keygen wrote); needed for peers "
        "beyond this machine",
    )
    peers.add_argument(
        "--peer-timeout",
        type=positive_float,
        default=DEFAULT_PEER_TIMEOUT,
        metavar="SECONDS",
        help="a peer that sends nothing about a job for this long has stopped answering: its job runs "
        "elsewhere (default: %(default)s)",
    )
    parser.set_defaults(run=run)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def run(args: argparse.Namespace) -> int:
    try:
        keys = load_keys(args.curve_secret_key) if args.curve_secret_key else None
        peer_key = load_public_key(args.peer_key) if args.peer_key else None
        check_peers(args.peer, peer_key)
        replicate = ReplicateSettings(
            models=load_models(args.replicate_models, args.replicate_price_per_second),
            concurrency=args.replicate_concurrency,
            request_timeout=args.replicate_timeout,
            job_timeout=args.replicate_job_timeout,
        )
        server = Server(
            ServerConfig(
                endpoint=args.bind,
                data_dir=args.data_dir,
                weights=args.weights,
                device=args.device,
                precision=args.precision,
                limits=Limits(args.queue_size, args.max_image_bytes, args.max_image_pixels),
                store_limits=StoreLimits(int(args.store_max_gb * 1e9), args.store_max_days * 86400),
                keys=keys,
                parent_pid=args.parent_pid,
                max_local_resolution=args.max_local_resolution,
                replicate=replicate,
                peers=tuple(args.peer),
                peer_key=peer_key,
                peer_timeout=args.peer_timeout,
            )
        )
    except (StartupError, SecurityError, StoreError, ModelConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(
            signum, lambda number, frame: server.request_stop(f"signal {signal.Signals(number).name}")
        )
    return server.serve()
