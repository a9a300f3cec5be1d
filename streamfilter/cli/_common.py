"""What every subcommand shares: messages to standard error, options common to several
subcommands, and the pre-pass that lets option values begin with '-'."""

from __future__ import annotations

import argparse
import re
import sys

#: Options whose value may begin with '-': point groups (``-y -42m``, ``-y -3m_R``, ``-y -1``)
#: and Miller indices (``--hkl -2,0,0``).  Any subcommand that spells its options so gets the
#: values through :func:`join_dash_values`.
DASH_VALUE_OPTIONS = ("-y", "--symmetry", "--hkl")

# a value, not an option: '-' then a digit (every CrystFEL point group and every index
# triplet that starts with '-' does; no option of streamfilter does)
_DASH_VALUE = re.compile(r"-[0-9]")


def _takes_dash_value(arg: str) -> bool:
    if arg in DASH_VALUE_OPTIONS:
        return True
    # argparse accepts unambiguous abbreviations of long options (--sym for --symmetry)
    return len(arg) > 3 and arg.startswith("--") and "=" not in arg and any(
        opt.startswith(arg) for opt in DASH_VALUE_OPTIONS if opt.startswith("--"))


def join_dash_values(argv: list[str]) -> list[str]:
    """Join ``-y -42m`` into ``-y=-42m`` (and ``--hkl -2,0,0`` into ``--hkl=-2,0,0``).

    argparse takes a word that begins with '-' for an option, unless it looks like a
    negative number, so ``-y -42m`` (as process_hkl, check_hkl and compare_hkl are called)
    would fail with "expected one argument".  This pre-pass over the command line, run by
    :func:`streamfilter.cli.main` before parsing, joins each option of
    :data:`DASH_VALUE_OPTIONS` with a following word that begins with '-' and a digit.
    Words after ``--`` are left alone.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.extend(argv[i:])
            break
        if i + 1 < len(argv) and _takes_dash_value(arg) and _DASH_VALUE.match(argv[i + 1]):
            out.append(f"{arg}={argv[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


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
        metavar="DIR|OLD=NEW",
        help="where to look for the frames (repeatable; the stream's own directory is "
        "searched first). DIR: DIR joined with the image file name, then with its last "
        "components (all of them, ..., the base name), so one DIR finds every run folder "
        "of a moved data set, absolute names included. OLD=NEW: an image file name that "
        "starts with the directory OLD is looked up under NEW instead (tried first)",
    )
    p.add_argument(
        "-g",
        "--geometry",
        metavar="FILE",
        help="geometry file (default: the one embedded in the stream)",
    )


def add_progress_argument(p: argparse.ArgumentParser) -> None:
    """``--progress-every SECONDS``: the progress line when standard error is not a terminal
    (applied by :func:`streamfilter.cli.main` through :func:`streamfilter.progress.set_every`).
    """
    from ..progress import DEFAULT_EVERY

    p.add_argument(
        "--progress-every",
        type=float,
        default=DEFAULT_EVERY,
        metavar="SECONDS",
        help="when standard error is not a terminal (a log file, | tee, Slurm), print a "
        "progress line (frames done, frames/s, time left) every SECONDS "
        f"(default {DEFAULT_EVERY:g}; 0: none; -q: none)",
    )


def int_radius(text: str) -> tuple[float, float, float]:
    """argparse type of ``--int-radius R1,R2,R3``
    (:func:`streamfilter.crystal.parse_int_radius`, the one place its rules live)."""
    from ..crystal import parse_int_radius
    from ..errors import StreamfilterError

    try:
        return parse_int_radius(text)
    except StreamfilterError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
