"""`triposr-sidecar`: one entry point, one module per subcommand under `sidecar/commands/`."""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__
from .commands import bench, doctor, generate, keygen, serve, submit
from .heap import avoid_huge_page_stalls
from .triposr.errors import TripoSRError

COMMANDS = (generate, doctor, serve, submit, keygen, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triposr-sidecar",
        description="TripoSR image-to-3D: run the model, or serve it to the Blender add-on.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subcommands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    avoid_huge_page_stalls()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s", stream=sys.stderr)
    logging.getLogger("sidecar").setLevel(logging.INFO)
    try:
        return args.run(args)
    except TripoSRError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
