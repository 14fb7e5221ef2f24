"""`bench`: this machine's run record, as a table to read and as JSON."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

from ..benchmark import BenchRecord, run_bench
from ..measurements import FILE_NAME, Measurements, Run
from ..memory import format_bytes
from ..pipeline import STAGES, GenerationParams
from .generate import add_asset_options, asset_options
from .options import add_data_dir_option, add_model_options


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "bench",
        help="measure load time, speed and memory on this machine",
        description="Measure model load time, per-stage times and peak memory at several mesh "
        "resolutions. Without weights on this machine, measures seeded random weights of the "
        "full-size network (and says so).",
    )
    add_model_options(parser)
    parser.add_argument(
        "--resolutions",
        default="256,512,1024",
        help="comma-separated marching-cubes resolutions (default: 256,512,1024)",
    )
    parser.add_argument("--dense", dest="sparse", action="store_false", help="evaluate the whole grid")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the record as JSON")
    add_data_dir_option(parser, "the sidecar's data folder, where the runs are recorded for its estimates")
    add_asset_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        resolutions = [int(value) for value in args.resolutions.split(",") if value.strip()]
    except ValueError:
        raise SystemExit("error: --resolutions takes whole numbers separated by commas") from None
    progress = lambda line: print(line, file=sys.stderr)  # noqa: E731 - keeps stdout for the record
    params, options = GenerationParams(sparse=args.sparse), asset_options(args)
    record = run_bench(args.weights, args.device, resolutions, args.precision, params, options, progress)
    print(render_table(record))
    _record_runs(record.measured_runs(params, options), args.data_dir)
    if args.json:
        args.json.write_text(json.dumps(record.to_json(), indent=2))
        print(f"JSON written to {args.json}")
    return 1 if any(run.error for run in record.runs) else 0


def _record_runs(runs: list[Run], data_dir: Path) -> None:
    """Seed the sidecar's estimates; a data folder that cannot be written costs them, not the record."""
    try:
        measurements = Measurements(data_dir)
        try:
            for run in runs:
                measurements.add(run)
        finally:
            measurements.close()
    except (OSError, sqlite3.Error) as exc:
        print(f"The runs could not be recorded for estimates in {data_dir}: {exc}", file=sys.stderr)
    else:
        print(f"{len(runs)} runs recorded in {data_dir / FILE_NAME} for the sidecar's estimates")


def render_table(record: BenchRecord) -> str:
    lines = [
        f"triposr-sidecar {record.sidecar_version} · Python {record.python} · torch {record.torch}",
        f"platform: {record.platform}",
        f"usable devices: {', '.join(record.usable_devices)}",
        f"measured on: {record.device} ({record.precision})",
        f"weights: {record.weights}"
        + ("  << RANDOM: timings real, meshes meaningless" if record.random_weights else ""),
        f"model load: {record.load_seconds:.1f} s",
        "",
    ]
    stages = [stage for stage in STAGES if any(stage in run.stage_seconds for run in record.runs)]
    header = ["resolution", *stages, "total", "peak RSS", "peak device", "vertices", "faces"]
    rows = [header]
    notes = {}  # row index -> the reason a resolution has no figures, printed across the columns
    for run in record.runs:
        if run.error or run.skipped:
            notes[len(rows)] = f"error: {run.error}" if run.error else f"skipped: {run.skipped}"
            rows.append([str(run.resolution)])
            continue
        times = [f"{run.stage_seconds.get(stage, 0.0):.2f} s" for stage in stages]
        rows.append(
            [
                str(run.resolution),
                *times,
                f"{run.total_seconds:.2f} s",
                format_bytes(run.peak_rss_bytes),
                format_bytes(run.peak_device_bytes),
                f"{run.vertices:,}",
                f"{run.faces:,}",
            ]
        )
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(header))]
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, notes.get(index, "")]).rstrip())
    if record.surface_shift_vs_float32 is not None:
        lines += [
            "",
            f"{record.precision} moves the surface by {record.surface_shift_vs_float32:.1e} of its size "
            "against float32 (mean distance, both ways)",
        ]
    if record.device.startswith("mps"):
        fallbacks = ", ".join(f"{op} x{count}" for op, count in sorted(record.mps_fallbacks.items()))
        lines += ["", f"ops that fell back to the CPU: {fallbacks or 'none'}"]
    return "\n".join(lines)
