"""Progress bars (tqdm) on standard error: off when it is not a terminal or with --quiet."""

from __future__ import annotations

import sys
from typing import Any


class _NoBar:
    """What :func:`byte_progress` gives when no bar is shown: counts, prints nothing."""

    def __init__(self) -> None:
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def byte_progress(total: int | None, desc: str, quiet: bool = False) -> Any:
    """A tqdm bar counting bytes (update it with the bytes consumed); a silent counter
    with ``quiet`` or when standard error is not a terminal (tqdm is then not imported)."""
    if quiet or not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                file=sys.stderr, leave=False)


def input_size(path: str) -> int | None:
    """Size in bytes of a regular input file (None for stdin or compressed input)."""
    import os

    if path == "-" or str(path).endswith(".gz"):
        return None
    try:
        return os.path.getsize(path)
    except OSError:
        return None
