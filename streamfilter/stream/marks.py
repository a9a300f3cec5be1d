"""What ``streamfilter reintegrate`` leaves in the streams it writes: the audit line in the
header and the chunk-header line that marks a chunk passed through unchanged.

Both are written by :mod:`streamfilter.pipeline` and read back here, by ``info``.
"""

from __future__ import annotations

import re

from .model import BEGIN_CHUNK, BEGIN_GEOM, StreamHeader

#: key of the chunk-header line ``streamfilter_passed_through = <reason>`` that marks a chunk
#: copied unchanged because it could not be re-integrated
PASSED_THROUGH_KEY = "streamfilter_passed_through"

_AUDIT = re.compile(r"streamfilter (\S+) reintegrate (.*)$")


def reintegration_audit(header: StreamHeader) -> dict[str, str | None] | None:
    """The audit line of a stream ``streamfilter reintegrate`` wrote, as ``{"line",
    "version", "method"}`` (``method`` with its CrystFEL flags, e.g. ``crystfel-grad``), or
    None for a stream it did not write.  The last such line counts (a stream re-integrated
    twice has two)."""
    found = None
    for line in header.lines[1:]:
        if line.startswith(BEGIN_GEOM.decode()) or line.startswith(BEGIN_CHUNK.decode()):
            break
        m = _AUDIT.match(line)
        if m:
            method = re.search(r"--method=(\S+)", m.group(2))
            found = {
                "line": line,
                "version": m.group(1),
                "method": method.group(1) if method else None,
            }
    return found
