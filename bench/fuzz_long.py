"""The long fuzz run (off by default in CI): many more mutated streams than the test suite.

Runs the mutation engine and the checks of ``tests/test_fuzz.py`` on a synthetic data set
(always) and on ref-small's r345 stream (when ``../shared/data/ref-small`` is present),
through ``cat`` and ``reintegrate``, each with and without ``--keep-going``, and prints how
many cases were tried, how they ended, and every broken promise (with the mutations, so a
failure can be replayed).  Exit status 1 if anything broke.

    python bench/fuzz_long.py --cases 2000 --seed 1
"""

from __future__ import annotations

import argparse
import random
import re
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import REF_SMALL  # noqa: E402
from tests.streamtext import build_stream  # noqa: E402
from tests.test_fuzz import (  # noqa: E402
    KINDS,
    Mutation,
    mutate,
    ref_base,
    run_all,
    synth_base,
)


def random_mutations(rng: random.Random) -> list[Mutation]:
    return [
        Mutation(rng.choice(KINDS), rng.random(), rng.randrange(10_000))
        for _ in range(rng.choice((1, 1, 2, 3)))
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1000, help="mutated inputs per base")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--bases",
        default="synth,builder,ref",
        help="comma-separated: synth, builder (cat only), ref",
    )
    ap.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per input before it counts as a hang"
    )
    args = ap.parse_args(argv)
    TIMEOUT[0] = args.timeout
    rng = random.Random(args.seed)
    tally: Counter = Counter()
    failures: list[str] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bases = {}
        wanted = args.bases.split(",")
        if "synth" in wanted:
            bases["synth"] = (*synth_base(tmp / "synth"), ("cat", "reintegrate"))
        if "ref" in wanted and REF_SMALL is not None:
            bases["ref"] = (*ref_base(REF_SMALL), ("cat", "reintegrate"))
        for name, (data, frames, commands) in bases.items():
            for _ in range(args.cases):
                muts = random_mutations(rng)
                _one(name, mutate(data, muts), frames, commands, muts, tmp, tally, failures)
        if "builder" in wanted:
            for _ in range(args.cases):
                muts = random_mutations(rng)
                data = build_stream(seed=rng.randrange(1000), n_chunks=6).text
                _one("builder", mutate(data, muts), None, ("cat",), muts, tmp, tally, failures)
    seconds = time.perf_counter() - t0
    print(f"fuzz_long: {tally['inputs']} mutated inputs, {tally['runs']} runs ({seconds:.0f} s)")
    for key in sorted(k for k in tally if k not in ("inputs", "runs")):
        print(f"  {key}: {tally[key]}")
    print(f"  broken promises: {len(failures)}")
    kinds: dict[str, list[str]] = {}
    for f in failures:
        kinds.setdefault(_signature(f), []).append(f)
    for sig, cases in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        print(f"--- {len(cases)} x {sig}\n{cases[0]}")
    return 1 if failures else 0


def _signature(failure: str) -> str:
    """A failure's kind: its message without paths, numbers and quoted text."""
    msg = failure.split("]: ", 1)[-1].split("\n", 1)[0]
    msg = re.sub(r"'[^']*'|\"[^\"]*\"", "'...'", msg)
    msg = re.sub(r"/\S+", "PATH", msg)
    return re.sub(r"\d+", "N", msg)[:140]


class Hang(Exception):
    """A case ran longer than --timeout seconds."""


def _alarm(signum, frame):
    raise Hang(f"still running after {TIMEOUT[0]:g} s")


TIMEOUT = [60.0]


def _one(name, data, frames, commands, muts, tmp, tally, failures) -> None:
    tally["inputs"] += 1
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, TIMEOUT[0])
    try:
        outcomes = run_all(data, tmp / "case", frames, commands)
    except Exception as e:  # noqa: BLE001 - every failure is reported, with the case
        tally["runs"] += 1
        where = traceback.format_exception(e)[-3:]
        failures.append(
            f"[{name}] {[str(m) for m in muts]}: {type(e).__name__}: {e}\n" + "".join(where)
        )
        return
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    for o in outcomes:
        tally["runs"] += 1
        mode = f"{o.command}{' --keep-going' if o.keep_going else ''}"
        tally[f"{mode}: exit {o.status}"] += 1
        tally["chunks checked"] += o.n_chunks
        tally["chunks rewritten"] += o.rewritten
        tally["chunks copied verbatim"] += o.verbatim


if __name__ == "__main__":
    sys.exit(main())
