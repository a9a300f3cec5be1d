"""Progress bars (tqdm) on standard error: off when it is not a terminal or with --quiet."""

from __future__ import annotations

import sys

from tqdm import tqdm


def byte_progress(total: int | None, desc: str, quiet: bool = False) -> tqdm:
    """A tqdm bar counting bytes (update it with the bytes consumed)."""
    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                disable=disable, file=sys.stderr, leave=False)


def input_size(path: str) -> int | None:
    """Size in bytes of a regular input file (None for stdin or compressed input)."""
    import os

    if path == "-" or str(path).endswith(".gz"):
        return None
    try:
        return os.path.getsize(path)
    except OSError:
        return None
