"""What every subcommand shares: messages to standard error."""

from __future__ import annotations

import argparse
import sys


def eprint(*args: object) -> None:
    """Print a message or summary line to standard error."""
    print(*args, file=sys.stderr)


def add_frame_arguments(p: argparse.ArgumentParser) -> None:
    """``--data-root`` and ``--geometry``: where frames and geometry come from (every command
    that reads frames takes them)."""
    p.add_argument(
        "--data-root",
        action="append",
        default=[],
        metavar="DIR",
        help="directory to look for the frames in (repeatable); the stream's own "
        "directory is searched first",
    )
    p.add_argument(
        "-g",
        "--geometry",
        metavar="FILE",
        help="geometry file (default: the one embedded in the stream)",
    )
