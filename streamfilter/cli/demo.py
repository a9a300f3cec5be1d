"""``streamfilter demo [DIR]``: simulate, re-integrate three ways, score against the truth."""

from __future__ import annotations

import argparse

DESCRIPTION = (
    "Makes a small data set with :mod:`streamfilter.synth` (frames, geometry, a format-2.3 "
    "stream and the noise-free truth), re-integrates the stream with ``--method crystfel``, "
    "``--method robust`` and ``--method profile`` into three new streams, and prints per "
    "resolution shell how far each method's intensities are from the true Bragg photons of "
    "the same peak discs."
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="simulate a data set, re-integrate it three ways, score it",
                       description=DESCRIPTION)
    p.add_argument("directory", nargs="?", metavar="DIR",
                   help="keep the files here (default: a temporary directory, removed)")
    p.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    p.add_argument("--frames", type=int, default=20, help="number of frames (default 20)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import tempfile

    from ..synth.demo import run_demo

    if args.directory:
        run_demo(args.directory, seed=args.seed, n_frames=args.frames)
    else:  # the path is not printed: it is gone when the demo ends
        with tempfile.TemporaryDirectory(prefix="streamfilter-demo-") as d:
            run_demo(d, seed=args.seed, n_frames=args.frames, where="a temporary directory")
        print("\nThe files were in a temporary directory, now removed; "
              "to keep them: streamfilter demo DIR")
    return 0
