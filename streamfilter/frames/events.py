"""Event IDs and the ``%`` placeholders of HDF5 paths.

An event ID (as CrystFEL writes it in a chunk's ``Event:`` line; ``libcrystfel/src/image.c``
and the ``crystfel_geometry(5)`` manual page, "dim" and "data" keys)::

    event_id  := path_part* "//" dim_part?     e.g. "//", "//17", "run_3//", "run_3//2/17"

Path parts replace, in order, the ``%`` characters of the panel's ``data`` path; dim parts
(0-based) index, in order, the axes declared ``dimN = %``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class EventID:
    """A parsed event ID: path parts (for ``%`` in paths) and dim parts (for ``%`` axes)."""

    path_parts: tuple[str, ...]
    dims: tuple[int, ...]


def parse_event(event: str | None) -> EventID:
    """Parse ``[path_part/...]//[int[/int...]]``; None (old streams) means ``//``.

    Raises
    ------
    ValueError
        If there is no ``//`` or a dim part is not a non-negative integer.
    """
    if event is None:
        event = "//"
    event = event.strip()
    left, sep, right = event.partition("//")
    if not sep:
        raise ValueError(f"invalid event ID '{event}': no '//'")
    path_parts = tuple(left.split("/")) if left else ()
    if any(p == "" for p in path_parts):
        raise ValueError(f"invalid event ID '{event}': empty path part")
    dims: tuple[int, ...] = ()
    if right:
        items = right.split("/")
        if not all(s.isdigit() for s in items):
            raise ValueError(f"invalid event ID '{event}': dim parts must be integers >= 0")
        dims = tuple(int(s) for s in items)
    return EventID(path_parts, dims)


def substitute_path(template: str, path_parts: Sequence[str], *, allow_extra: bool) -> str:
    """Put the event's path parts into the ``%`` characters of an HDF5 path, in order.

    Parameters
    ----------
    template : str
        e.g. ``/data/%/raw``.
    path_parts : sequence of str
    allow_extra : bool
        Masks and saturation maps may have fewer placeholders than the event has parts.

    Raises
    ------
    ValueError
        Too few path parts (or too many when ``allow_extra`` is False).
    """
    n = template.count("%")
    if len(path_parts) < n or (len(path_parts) > n and not allow_extra):
        raise ValueError(
            f"the event has {len(path_parts)} path part(s) but '{template}' has {n} '%'"
        )
    if n == 0:
        return template
    pieces = template.split("%")
    out = [pieces[0]]
    for part, piece in zip(path_parts, pieces[1:], strict=False):
        out += [part, piece]
    return "".join(out)
