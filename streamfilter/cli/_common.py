"""What every subcommand shares: messages to standard error."""

from __future__ import annotations

import sys


def eprint(*args: object) -> None:
    """Print a message or summary line to standard error."""
    print(*args, file=sys.stderr)
