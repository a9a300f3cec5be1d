"""``streamfilter reintegrate``: re-integrate every reflection from its frame."""

from __future__ import annotations

import argparse
import sys

from streamfilter.integrate import DEFAULT_METHOD, METHODS
from streamfilter.pipeline.config import DEFAULT_RADII
from streamfilter.pipeline.journal import DEFAULT_INTERVAL

from ._common import add_follow_arguments, add_frame_arguments, follow_of, int_radius

#: exit status of a run that wrote its output but left chunks with crystals not
#: re-integrated (more than ``--allow-failed`` admits)
EXIT_NOT_REINTEGRATED = 3

#: ``--background`` choices: :data:`streamfilter.integrate.robust.BACKGROUNDS` (a test checks
#: that they are the same), written out so that parsing options does not import that module.
BACKGROUNDS = ("radial", "plane", "mean")


METHODS_HELP = """\
methods:
  crystfel  reproduces indexamajig's rings integration number for number (CrystFEL 0.12):
            re-predicts every reflection from astar/bstar/cstar, photon energy, det_shift and
            the geometry; peak disc d^2 <= r1^2, background annulus r2^2 <= d^2 <= r3^2 around
            the pixel holding the prediction; overlap mask of all predicted reflections; flat
            mean background (plane with -grad, taken from the stream's --integration); sigma
            with the Poisson term from adu_per_photon; drops I < -5 sigma. -sat keeps
            saturated reflections.
  robust    the peak disc of CrystFEL (d^2 <= r1^2 around the pixel holding the prediction,
            same overlap and bad-pixel rules) minus a better background, and a sigma(I) that
            includes the uncertainty of that background. --background selects:
              radial  (default) one smooth model per frame: in every 1-px ring of equal
                      scattering angle c0 + c1 cos(phi) + s1 sin(phi) + c2 cos(2phi) +
                      s2 sin(2phi), smoothed over +-8 rings by a local quadratic (keeps a
                      water ring), fitted to all pixels farther than 5 px from any
                      predicted reflection or found peak, clipped at 3 sigma above
              plane   local plane through the annulus r2..8 px, neighbours' discs and
                      found peaks masked, iterative 3-sigma high-side clipping
              mean    the same with a flat clipped mean
            Reflections whose box leaves the panel are kept when the peak disc is whole
            (partial rings).
  profile   robust's prediction, peak disc, rows and radial background, but I is the
            weighted least-squares amplitude of a reference profile fitted to the
            background-subtracted disc pixels (weights 1/(background variance + counts of
            the robust sum's model)), the profile normalised over the disc so that I
            estimates the same disc signal as the sum. Reference profiles come from the
            strong spots (robust I/sigma >= 10) of the same frame, per panel and resolution
            bin with fallbacks to the panel and the frame: a pixel-integrated 2-D Gaussian
            (offset from the prediction, width per axis) placed at each reflection's own
            sub-pixel position, plus the pool's mean residual. sigma(I) includes the
            background-model error and the profile-shape error measured on the strong
            spots; a reflection keeps the robust sum when its sigma is smaller. Needs
            --background radial.
  How accurate each method is, and when to choose which: docs/methods.md.

failures and interruptions:
  A chunk whose frame cannot be read (missing or truncated file, wrong shape, event out of
  range, unreadable) is copied unchanged, with the line
  "streamfilter_passed_through = REASON" after its begin marker (CrystFEL's reader skips
  it), listed in OUT.failed (or --failed FILE: one tab-separated line per chunk: chunk
  number, line, image filename, event, reason) and counted; a warning is printed even
  with -q, and the exit status is 3 unless --allow-failed admits that many (chunks
  without crystals never count). When chunks with crystals exist but none could be
  re-integrated, no output is written (exit status 2). --strict makes any such chunk an
  error. A chunk
  whose text cannot be used stops the run with an error naming file, line and chunk (exit
  status 2); --keep-going copies it verbatim and counts it instead, so that every input
  chunk comes out, rewritten or verbatim. An error or an interruption (Ctrl-C, SIGTERM)
  never leaves a file at OUT, and the input is never modified.

files of --resume (in the directory of OUT):
  OUT.partial     the output so far (OUT itself appears only when the run is complete);
                  TABLE.partial likewise for --table
  OUT.sfjournal   progress journal (JSON): the input's path, size and mtime, a digest of
                  the options, the chunk and byte offset to continue from, the size of each
                  partial file there; synced to disk every --journal-every seconds
  When a --resume run is interrupted (Ctrl-C, SIGTERM, killed, power cut) after its first
  checkpoint, both files stay; running the same command again continues from the journal
  (checked against the input and options) and gives output byte-identical to an
  uninterrupted run. A successful run renames OUT.partial to OUT and removes the journal;
  an error removes both. Delete both files to start afresh.

during a beamtime (--follow):
  IN may still be growing: each chunk is re-integrated once its "----- End chunk -----"
  line is written, the file is looked at every second or so (never polled hot), and the run
  ends when IN has not grown for --idle seconds (default 60). OUT is written (or renamed)
  only then and is byte-identical to a run on the finished stream; an incomplete last
  chunk is left out with the same warning and exit status. The check of the first frames
  waits for them likewise. A stream truncated, replaced or removed meanwhile is an error.
  Works with -j N (chunks go to the workers in batches, so the last few dozen are
  integrated after the idle time) and with --resume: the journal records the input as it
  was at each checkpoint, and the same command run again after an interruption continues
  there if the input has only grown since. Not with --dask.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reintegrate",
        help="re-integrate every reflection from its HDF5 frame",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Re-integrate every reflection of every crystal from the frames the "
        "stream references and write a stream that partialator and process_hkl read as "
        "indexamajig's. Only reflection rows and num_* counters change.",
        epilog=METHODS_HELP,
    )
    p.add_argument("input", metavar="IN", help="input stream, - for stdin")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output, - for stdout")
    p.add_argument(
        "--int-radius",
        type=int_radius,
        metavar="R1,R2,R3",
        help="ring radii in pixels (default: the stream's own, else "
        + ",".join(f"{r:g}" for r in DEFAULT_RADII)
        + ")",
    )
    p.add_argument(
        "--method",
        choices=tuple(METHODS),
        default=DEFAULT_METHOD,
        help=f"integration method (default {DEFAULT_METHOD}; crystfel reproduces indexamajig)",
    )
    p.add_argument(
        "--background",
        choices=BACKGROUNDS,
        help="background model of --method robust (default radial; see below)",
    )
    add_frame_arguments(p)
    p.add_argument(
        "-j",
        "--jobs",
        type=positive_int,
        default=1,
        metavar="N",
        help="processes that integrate: this one and N-1 workers (default 1)",
    )
    p.add_argument(
        "--dask",
        metavar="SCHEDULER",
        help="run on Dask: 'local' for a LocalCluster or a scheduler address",
    )
    p.add_argument("--table", metavar="FILE", help="write per-reflection diagnostics (CSV)")
    _add_failure_arguments(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="make the run resumable, and resume it: write OUT.partial and a "
        "progress journal OUT.sfjournal (see below); if they are there from an "
        "interrupted run with the same input and options, continue from the "
        "journal",
    )
    p.add_argument(
        "--journal-every",
        type=float,
        default=DEFAULT_INTERVAL,
        metavar="SECONDS",
        help="how often --resume syncs the partial output and the journal to "
        f"disk (default {DEFAULT_INTERVAL:g})",
    )
    from ._common import add_progress_argument  # noqa: PLC0415 - one hunk for this option

    add_progress_argument(p)
    add_follow_arguments(p, "re-integrate each chunk")
    p.add_argument(
        "--force",
        action="store_true",
        help="re-integrate even when the geometry or the frames do not match the stream "
        "(checked on the first frames with found peaks before the run; see streamfilter "
        "check)",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar or summary (warnings about chunks not re-integrated stay)",
    )
    p.set_defaults(func=run)


def _add_failure_arguments(p: argparse.ArgumentParser) -> None:
    """What a run does with chunks it cannot re-integrate (see "failures" below)."""
    p.add_argument(
        "--strict",
        action="store_true",
        help="a frame that cannot be read is an error (default: pass the chunk "
        "through unchanged and count it)",
    )
    p.add_argument(
        "--allow-failed",
        type=allowance,
        metavar="N|P%",
        help="exit 0 even when up to N chunks (or P%% of the chunks with crystals) could "
        "not be re-integrated (default 0: any such chunk gives exit status 3)",
    )
    p.add_argument(
        "--failed",
        metavar="FILE",
        help="list the chunks not re-integrated in FILE (default OUT.failed; with -o - "
        "none unless given)",
    )
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="copy chunks that cannot be used (malformed text, unusable crystal "
        "values) verbatim, count them and continue, instead of stopping",
    )


def positive_int(text: str) -> int:
    """``-j``: a whole number >= 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return n


def allowance(text: str):
    """``--allow-failed``: a count or a percentage."""
    from streamfilter.pipeline.failures import Allowance

    try:
        return Allowance.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def run(args: argparse.Namespace) -> int:
    from streamfilter.errors import StreamfilterError
    from streamfilter.pipeline.journal import is_resumable, journal_path, partial_path
    from streamfilter.pipeline.run import reintegrate

    if args.strict and args.allow_failed is not None:
        raise StreamfilterError("--strict and --allow-failed contradict each other; give one")
    try:
        s = reintegrate(
            args.input,
            args.output,
            method=args.method,
            int_radius=args.int_radius,
            background=args.background,
            geometry=args.geometry,
            data_roots=args.data_root,
            jobs=args.jobs,
            dask=args.dask,
            table=args.table,
            strict=args.strict,
            keep_going=args.keep_going,
            quiet=args.quiet,
            resume=args.resume,
            journal_every=args.journal_every,
            allow_failed=args.allow_failed,
            failed=args.failed,
            warn=lambda message: print(message, file=sys.stderr),
            force=args.force,
            follow=follow_of(args),
        )
    except BaseException as e:
        journal = journal_path(args.output)
        if args.resume and is_resumable(e) and journal.is_file():
            print(
                f"reintegrate: progress kept in {partial_path(args.output)} and {journal}; "
                "run the same command again (with --resume) to continue",
                file=sys.stderr,
            )
        raise
    if not args.quiet:
        print(s.format(), file=sys.stderr)
    warning = s.warning()
    if warning:  # also with -q: nobody may take this output for a fully re-integrated one
        print(warning, file=sys.stderr)
    if s.incomplete_tail and args.quiet:  # (the summary says it otherwise)
        print(f"reintegrate: warning: {s.incomplete_tail}", file=sys.stderr)
    return 0 if s.acceptable else EXIT_NOT_REINTEGRATED
