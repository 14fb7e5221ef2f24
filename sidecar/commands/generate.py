"""`generate`: images in, GLB files out, with the model loaded in this process."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from tqdm import tqdm

from ..assets.options import MIN_FACES, TEXTURE_SIZES, AssetOptions
from ..fileio import write_atomically
from ..memory import format_bytes
from ..pipeline import STAGES, GenerationParams, GenerationResult, generate_glb
from ..triposr import TripoSRError, load_model, open_image
from ..triposr.model import CPU_CHUNK_SIZE, DEFAULT_CHUNK_SIZE, DEFAULT_THRESHOLD
from .options import add_model_options

log = logging.getLogger(__name__)


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "generate",
        help="turn images into GLB models",
        description="Turn each image into DIR/<image name>.glb with the local model.",
    )
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the GLBs")
    add_model_options(parser)
    add_generation_options(parser)
    add_asset_options(parser)
    parser.set_defaults(run=run)


def add_generation_options(parser: argparse.ArgumentParser) -> None:
    defaults = GenerationParams()
    parser.add_argument(
        "--resolution",
        type=int,
        default=defaults.resolution,
        help=f"marching-cubes grid size per axis (default: {defaults.resolution})",
    )
    parser.add_argument(
        "--foreground-ratio",
        type=float,
        default=defaults.foreground_ratio,
        help=f"share of the image the object fills after cropping (default: {defaults.foreground_ratio})",
    )
    parser.add_argument(
        "--no-remove-bg",
        dest="remove_background",
        action="store_false",
        help="use images without transparency as they are, background included",
    )
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=0,
        help="points evaluated at once; lower it to save memory (default: what the device evaluates best, "
        f"{CPU_CHUNK_SIZE} on a CPU, {DEFAULT_CHUNK_SIZE} on a GPU)",
    )
    parser.add_argument(
        "--dense",
        dest="sparse",
        action="store_false",
        help="evaluate the density on the whole grid (the reference; slower, memory grows with resolution³)",
    )
    parser.add_argument(
        "--coarse-resolution",
        type=int,
        default=defaults.coarse_resolution,
        help="points per axis of the grid that finds the surface before the sparse evaluation; parts "
        f"smaller than its spacing can be missed (default: {defaults.coarse_resolution})",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"density at the surface (default: {DEFAULT_THRESHOLD:g}, as the official code)",
    )


def add_asset_options(parser: argparse.ArgumentParser) -> None:
    defaults = AssetOptions()
    group = parser.add_argument_group(
        "the asset", "what becomes of the surface: clean-up, faces, texture, placement"
    )
    group.add_argument(
        "--no-cleanup",
        dest="cleanup",
        action="store_false",
        help="keep floating pieces (by default, pieces under --min-piece of the largest one's area go)",
    )
    group.add_argument(
        "--min-piece",
        type=float,
        default=defaults.min_piece,
        metavar="SHARE",
        help=f"the smallest piece kept, as a share of the largest one's area (default: {defaults.min_piece})",
    )
    group.add_argument(
        "--smooth",
        type=int,
        default=defaults.smooth,
        metavar="N",
        help="rounds of volume-preserving smoothing (default: none)",
    )
    group.add_argument(
        "--faces",
        type=int,
        default=defaults.faces,
        metavar="N",
        help="simplify to N triangles, keeping the shape (default: all the surface has)",
    )
    group.add_argument(
        "--texture",
        type=int,
        default=defaults.texture,
        choices=TEXTURE_SIZES,
        metavar="SIZE",
        help="bake the model's colours into a SIZE x SIZE texture: "
        f"{', '.join(map(str, TEXTURE_SIZES))} (default: vertex colours)",
    )
    group.add_argument(
        "--ground", action="store_true", help="origin at the bottom centre, so the model stands on the ground"
    )
    group.add_argument(
        "--height",
        type=float,
        default=defaults.height,
        metavar="METRES",
        help="scale the model to this height (default: the model's own size, about a metre)",
    )


def asset_options(args: argparse.Namespace) -> AssetOptions:
    if not 0.0 <= args.min_piece <= 1.0:
        raise SystemExit("error: --min-piece is a share of the largest piece, from 0 to 1")
    if args.smooth < 0:
        raise SystemExit("error: --smooth cannot be negative")
    if args.faces and args.faces < MIN_FACES:
        raise SystemExit(f"error: --faces must be at least {MIN_FACES}")
    if args.height < 0:
        raise SystemExit("error: --height cannot be negative")
    return AssetOptions(
        cleanup=args.cleanup,
        min_piece=args.min_piece,
        smooth=args.smooth,
        faces=args.faces,
        texture=args.texture,
        ground=args.ground,
        height=args.height,
    )


def generation_params(args: argparse.Namespace) -> GenerationParams:
    if args.resolution < 8:
        raise SystemExit("error: --resolution must be at least 8")
    if args.chunk_size < 0:
        raise SystemExit("error: --chunk-size cannot be negative")
    if args.coarse_resolution < 2:
        raise SystemExit("error: --coarse-resolution must be at least 2")
    return GenerationParams(
        resolution=args.resolution,
        foreground_ratio=args.foreground_ratio,
        remove_background=args.remove_background,
        chunk_size=args.chunk_size,
        threshold=args.threshold,
        sparse=args.sparse,
        coarse_resolution=args.coarse_resolution,
    )


def run(args: argparse.Namespace) -> int:
    params = generation_params(args)
    options = asset_options(args)
    started = time.perf_counter()
    model = load_model(args.weights, args.device, precision=args.precision)
    print(f"Model loaded from {args.weights} in {time.perf_counter() - started:.1f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    targets = output_paths(args.images, args.out)
    for image_path, target in zip(args.images, targets, strict=True):
        try:
            result = generate_one(model, image_path, params, options, target.stem)
        except TripoSRError as exc:
            failed += 1
            print(f"error: {image_path}: {exc}")
            continue
        write_atomically(target, result.glb)
        print(f"{image_path} -> {target} ({result.vertices:,} vertices, {result.faces:,} faces)")
        print("  " + describe_timings(result))
        memory = f"peak memory {format_bytes(result.peak_rss_bytes)} RSS"
        if result.peak_device_bytes is not None:
            memory += f", {format_bytes(result.peak_device_bytes)} on {result.device}"
        print(f"  {memory}")
    if failed:
        print(f"{failed} of {len(args.images)} image(s) failed")
    return 1 if failed else 0


def output_paths(images: list[Path], folder: Path) -> list[Path]:
    """DIR/<stem>.glb per image; images sharing a stem get -2, -3... so none overwrites another."""
    seen: dict[str, int] = {}
    paths = []
    for image in images:
        seen[image.stem] = seen.get(image.stem, 0) + 1
        suffix = "" if seen[image.stem] == 1 else f"-{seen[image.stem]}"
        paths.append(folder / f"{image.stem}{suffix}.glb")
    return paths


def generate_one(
    model, image_path: Path, params: GenerationParams, options: AssetOptions, name: str
) -> GenerationResult:
    image = open_image(image_path)
    # A bar over the five stages; `disable=None` keeps it off when the output is not a terminal.
    with tqdm(total=len(STAGES), desc=image_path.name, unit="stage", leave=False, disable=None) as bar:

        def progress(stage: str, fraction: float) -> None:
            done = round(STAGES.index(stage) + fraction, 2)
            bar.set_postfix_str(stage, refresh=False)
            bar.update(done - bar.n)

        return generate_glb(model, image, params, progress, options, name)


def describe_timings(result: GenerationResult) -> str:
    parts = [f"{stage} {seconds:.2f} s" for stage, seconds in result.stage_seconds.items()]
    return " · ".join([*parts, f"total {result.total_seconds:.2f} s"])
