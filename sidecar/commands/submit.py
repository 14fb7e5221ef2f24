"""`submit`: send images to a running sidecar and write the models it returns."""

from __future__ import annotations

import argparse
import sys
import uuid
from dataclasses import asdict
from pathlib import Path

import zmq.auth
from tqdm import tqdm

from shared import estimate_text
from shared.client import Event, SidecarClient, SidecarError
from shared.protocol import DEFAULT_ENDPOINT, POLICIES, QUEUED

from ..backends.replicate_settings import STAGES as CLOUD_STAGES
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

# The stages only a Replicate job goes through: once one shows, the job's bar follows Replicate's stages.
CLOUD_ONLY_STAGES = frozenset(CLOUD_STAGES) - frozenset(STAGES)


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
        "--replicate-model",
        metavar="NAME",
        help="the Replicate model for replicate jobs, and auto jobs that move there (default: the sidecar's "
        "first; `hello` lists them)",
    )
    policy = parser.add_argument_group(
        "Policies",
        "With --backend fastest or cheapest, the sidecar chooses: local, its peers or Replicate.",
    )
    policy.add_argument(
        "--budget",
        type=float,
        metavar="DOLLARS",
        help="the most the images may cost on Replicate together (default: no limit)",
    )
    policy.add_argument(
        "--deadline",
        type=float,
        metavar="SECONDS",
        help="cheapest: pay for Replicate only where the free backends would not finish within this",
    )
    policy.add_argument(
        "--batch",
        metavar="NAME",
        help="share the budget with other submits that name the same batch (default: these images alone)",
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
    parser.add_argument(
        "--estimate",
        action="store_true",
        help="print how long the images would take here and on Replicate, and what they would cost, "
        "without submitting them",
    )
    add_generation_options(parser)
    add_asset_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    params = {"backend": args.backend, **asdict(generation_params(args)), **asdict(asset_options(args))}
    if args.replicate_model:
        params["replicate_model"] = args.replicate_model
    policy = {"budget": args.budget, "deadline": args.deadline, "batch": args.batch}
    if args.backend not in POLICIES and any(value is not None for value in policy.values()):
        print(
            "error: --budget, --deadline and --batch go with --backend fastest or cheapest", file=sys.stderr
        )
        return 2
    if args.backend in POLICIES:  # the images of one submit share their budget
        policy["batch"] = args.batch or uuid.uuid4().hex
        params.update({name: value for name, value in policy.items() if value is not None})
    key = server_key(args.server_key) if args.server_key else None
    with SidecarClient(
        args.endpoint, server_public_key=key, heartbeat_timeout=args.heartbeat_timeout
    ) as client:
        try:
            hello = client.hello(timeout=5.0)
        except SidecarError as exc:
            print(f"error: {exc} Start one with `triposr-sidecar serve`.", file=sys.stderr)
            return 1
        if args.estimate:
            return print_estimate(client, params, len(args.images))
        problem = cloud_problem(hello, args.backend)
        if problem:
            print(problem, file=sys.stderr)
            if args.backend == "replicate":
                return 1
        if args.backend == "local":
            warn_of_memory(client, params, len(args.images))
        args.out.mkdir(parents=True, exist_ok=True)
        jobs: dict[str, JobView] = {}
        failed = 0
        for image, target in zip(args.images, output_paths(args.images, args.out), strict=True):
            try:
                data = image.read_bytes()
            except OSError as exc:
                failed += 1
                print(f"error: {image}: cannot be read ({exc.strerror})", file=sys.stderr)
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
    costs = [view.cost for view in jobs.values() if view.cost is not None]
    if costs:
        print(f"Batch total: ${sum(costs):.4f} ({len(costs)} job(s) on Replicate)")
    if failed:
        print(f"{failed} of {len(args.images)} image(s) failed", file=sys.stderr)
    return 1 if failed else 0


def print_estimate(client: SidecarClient, params: dict, count: int) -> int:
    try:
        estimate = client.estimate(params, count)
    except SidecarError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(estimate_text.details(estimate)))
    return 0


def warn_of_memory(client: SidecarClient, params: dict, count: int) -> None:
    """Say before a local batch starts that its runs would not fit in the memory free now."""
    try:
        warning = estimate_text.memory_warning(client.estimate(params, count))
    except SidecarError:  # the jobs say what is wrong
        return
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def cloud_problem(hello: dict, backend: str) -> str:
    """What to say before a batch when Replicate cannot run its jobs here, or ""."""
    replicate = hello.get("replicate") or {}
    if backend == "local" or replicate.get("available"):
        return ""
    reason = replicate.get("problem") or "this sidecar has no Replicate backend."
    if backend == "replicate":
        return f"error: Replicate cannot run jobs on this sidecar: {reason}"
    if backend in POLICIES:
        return f"note: {backend} places jobs only locally and on peers here: {reason}"
    return f"note: auto jobs run only locally here, as Replicate cannot run jobs on this sidecar: {reason}"


class JobView:
    """One submitted image: its progress bar while it runs, and a line when it ends."""

    def __init__(self, image: Path, target: Path):
        self.image = image
        self.target = target
        self.stages = STAGES  # the stages its bar runs through: the local ones, or Replicate's
        self.bar: tqdm | None = None
        self.cost: float | None = None  # US dollars, once it has ended on a paid backend

    def show(self, event: Event) -> bool:
        """Show the event; False when the job has failed."""
        header = event.header
        if event.type == "progress" and header["stage"] != QUEUED:
            self._progress(header["stage"], header["fraction"])
        elif event.type == "result":
            self._close_bar()
            self.cost = header.get("cost")
            write_atomically(self.target, event.payload)
            print(f"{self.image} -> {self.target} ({summary(header)})")
        elif event.type in ("error", "cancelled"):
            self._close_bar()
            self.cost = header.get("cost")
            paid = f" (it cost ${self.cost:.4f})" if self.cost else ""
            print(f"error: {self.image}: {header.get('message', 'cancelled')}{paid}", file=sys.stderr)
            return False
        return True

    def _progress(self, stage: str, fraction: float) -> None:
        if stage in CLOUD_ONLY_STAGES and self.stages is not CLOUD_STAGES:  # it runs on Replicate (now)
            self._close_bar()
            self.stages = CLOUD_STAGES
        if stage not in self.stages:
            return
        if self.bar is None:
            where = " on Replicate" if self.stages is CLOUD_STAGES else ""
            # `disable=None` keeps the bar off when the output is not a terminal.
            self.bar = tqdm(
                total=len(self.stages),
                desc=f"{self.image.name}{where}",
                unit="stage",
                leave=False,
                disable=None,
            )
        self.bar.set_postfix_str(stage, refresh=False)
        self.bar.update(round(self.stages.index(stage) + fraction, 2) - self.bar.n)

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def summary(result: dict) -> str:
    """A result's line: the mesh, the time, where it ran, what it cost, and why it moved there."""
    parts = [
        f"{result['vertices']:,} vertices, {result['faces']:,} faces, "
        f"{result['total_seconds']:.2f} s on {result['device']}"
    ]
    if result["from_store"]:
        parts.append("from the store")
    if result.get("cost") is not None:
        estimate = ", estimated" if result.get("cost_estimated") else ""
        parts.append(f"${result['cost']:.4f}{estimate}")
    if result.get("failover"):
        parts.append(f"moved to Replicate because {result['failover']['reason']}")
    elif result["params"]["backend"] in POLICIES and result.get("placement"):
        parts.append(result["placement"]["reason"])
    return "; ".join(parts)


def server_key(value: str) -> str | bytes:
    """The key itself, or the one in a public key file."""
    path = Path(value).expanduser()
    return zmq.auth.load_certificate(path)[0] if path.is_file() else value
