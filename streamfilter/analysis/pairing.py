"""Which chunk of stream A is paired with which chunk of stream B (``compare --pair-by``).

``streamfilter compare`` matches crystals and observations only within paired chunks.  A
chunk is keyed by a :class:`FrameKeys` object built per stream; chunks of A and B with equal
keys are paired.  The ways to pair (``--pair-by``):

``file`` (default)
    The same frame: the image file the stream names, resolved as ``reintegrate`` finds it
    (the stream's own directory first, then the other stream's, then the ``--data-root``
    directories and ``OLD=NEW`` replacements;
    :func:`streamfilter.frames.source.candidate_paths`) and made canonical
    (``os.path.realpath``), plus the ``Event`` text.  So ``lyso.h5`` next to one stream and
    ``/data/run1/lyso.h5`` in another pair when they are the same file, and a stream copied
    elsewhere still pairs with the one beside its frames.  A file not found is keyed by its
    name joined to the stream's directory (normalised).
``serial``
    The ``Image serial number`` of the chunks (indexamajig numbers its input frames from 1).
``event-offset:K``
    The same file, and the event of B = the event of A + K (the last number of the event
    text, ``//7`` or ``entry//7``): frame n and frame n + K of one dose series.
``map:FILE``
    A two-column text file, one pair per line (``#`` comments, blank lines ignored): the
    chunk of A in the first column, the one of B in the second, each given as its
    ``Image serial number`` (an integer) or as ``FILE//EVENT`` (or ``FILE`` when frames
    have no event), FILE resolved like the streams' image file names.

Chunks without a partner keep a key of their own (merged, counted as frames of one stream).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from streamfilter.errors import StreamfilterError

PAIR_BY_HELP = (
    "how chunks of A and B are paired for the observation level: file (default; the "
    "same resolved image file and event), serial (Image serial number), event-offset:K "
    "(same file, event of B = event of A + K: a dose series), map:FILE (two columns: "
    "serial number or FILE//EVENT of A, then of B)"
)


@dataclass(frozen=True)
class Pairing:
    """How chunks are paired (see the module).

    Attributes
    ----------
    mode : str
        ``file``, ``serial``, ``event-offset`` or ``map``.
    offset : int
        The event offset K of ``event-offset`` (B's event number minus A's).
    map_path : str or None
        The two-column file of ``map``.
    data_roots : tuple of str
        ``--data-root`` values (directories or ``OLD=NEW``), searched after each stream's
        own directory.
    """

    mode: str = "file"
    offset: int = 0
    map_path: str | None = None
    data_roots: tuple[str, ...] = ()

    def describe(self) -> str:
        """The ``--pair-by`` value that gives this pairing."""
        if self.mode == "event-offset":
            return f"event-offset:{self.offset}"
        if self.mode == "map":
            return f"map:{self.map_path}"
        return self.mode


def parse_pair_by(text: str, data_roots: tuple[str, ...] = ()) -> Pairing:
    """A :class:`Pairing` from a ``--pair-by`` value; StreamfilterError if malformed."""
    mode, _, arg = text.partition(":")
    if mode in ("file", "serial") and not arg:
        return Pairing(mode, data_roots=data_roots)
    if mode == "event-offset":
        try:
            return Pairing(mode, offset=int(arg), data_roots=data_roots)
        except ValueError:
            pass
    if mode == "map" and arg:
        return Pairing(mode, map_path=arg, data_roots=data_roots)
    raise StreamfilterError(
        f"--pair-by {text}: expected file, serial, event-offset:K (K an integer) or map:FILE"
    )


_EVENT_NUMBER = re.compile(r"(-?\d+)(\s*)$")


def shift_event(event: str | None, offset: int) -> str | None:
    """``event`` with its last number increased by ``offset`` (None when it has none)."""
    if not event:
        return None
    m = _EVENT_NUMBER.search(event)
    if m is None:
        return None
    return event[: m.start(1)] + str(int(m.group(1)) + offset)


class FileResolver:
    """Canonical paths of the image files one stream names (as ``reintegrate`` finds them)."""

    def __init__(self, stream_path: str, data_roots: tuple[str, ...] = (),
                 other_stream: str | None = None) -> None:  # fmt: skip
        from streamfilter.frames.source import split_roots

        self.stream_dir = _directory(stream_path)
        dirs, self.maps = split_roots(data_roots)
        self.dirs = [self.stream_dir, *dirs]
        if other_stream is not None and _directory(other_stream) != self.stream_dir:
            self.dirs.insert(1, _directory(other_stream))
        self._cache: dict[str, str] = {}

    def __call__(self, filename: str) -> str:
        """The real path of ``filename``'s file, or its name joined to the stream's
        directory when no file is found."""
        hit = self._cache.get(filename)
        if hit is None:
            from streamfilter.frames.source import candidate_paths

            for c in candidate_paths(filename, self.dirs, self.maps):
                if c.is_file():
                    hit = os.path.realpath(c)
                    break
            else:
                hit = os.path.normpath(os.path.join(self.stream_dir, filename))
            self._cache[filename] = hit
        return hit


def _directory(stream_path: str) -> Path:
    """The directory of a stream (the current one for standard input)."""
    return Path.cwd() if stream_path == "-" else Path(stream_path).resolve().parent


def _event_text(event: str | None) -> str:
    return (event or "").strip()


class FrameKeys:
    """The pairing key of each chunk of one stream (``side`` ``"a"`` or ``"b"``)."""

    def __init__(self, pairing: Pairing, stream_path: str, side: str,
                 other_stream: str | None = None) -> None:  # fmt: skip
        self.pairing = pairing
        self.side = side
        self.resolve = FileResolver(stream_path, pairing.data_roots, other_stream)
        self.mapping: tuple[dict, dict] | None = None

    def __call__(self, filename: str | None, event: str | None, serial: int | None,
                 chunk_index: int) -> tuple:  # fmt: skip
        """The key of one chunk; a key of its own (``("unpaired", side, chunk)``) when the
        pairing gives it no partner."""
        mode = self.pairing.mode
        key: tuple | None = None
        if mode == "file" and filename is not None:
            key = (self.resolve(filename), _event_text(event))
        elif mode == "serial" and serial is not None:
            key = ("serial", serial)
        elif mode == "event-offset" and filename is not None:
            shifted = shift_event(event, self.pairing.offset if self.side == "a" else 0)
            if shifted is not None:
                key = (self.resolve(filename), _event_text(shifted))
        elif mode == "map" and self.mapping is not None:
            column = 0 if self.side == "a" else 1
            key = self.mapping[column].get(("serial", serial))
            if key is None and filename is not None:
                key = self.mapping[column].get((self.resolve(filename), _event_text(event)))
        return key if key is not None else ("unpaired", self.side, chunk_index)


def frame_keys(pairing: Pairing, path_a: str, path_b: str) -> tuple[FrameKeys, FrameKeys]:
    """The :class:`FrameKeys` of stream A and of stream B (reads the map file)."""
    keys_a = FrameKeys(pairing, path_a, "a", path_b)
    keys_b = FrameKeys(pairing, path_b, "b", path_a)
    if pairing.mode == "map":
        mapping = read_pair_map(pairing.map_path or "", keys_a.resolve, keys_b.resolve)
        keys_a.mapping = keys_b.mapping = mapping
    return keys_a, keys_b


def _map_token(token: str, resolve: FileResolver) -> tuple:
    if token.isdigit():
        return ("serial", int(token))
    name, sep, event = token.partition("//")
    return (resolve(name), _event_text(sep + event if sep else None))


def read_pair_map(path: str, resolve_a: FileResolver, resolve_b: FileResolver
                  ) -> tuple[dict, dict]:  # fmt: skip
    """The ``map:FILE`` of ``--pair-by``: ({A chunk token: pair id}, {B chunk token: pair
    id}); tokens are ``("serial", n)`` or (real path, event text)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise StreamfilterError(f"cannot read the pairing map ({e.strerror})", path=path) from None
    col_a: dict = {}
    col_b: dict = {}
    for line_no, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) != 2:
            raise StreamfilterError(
                "expected two columns (A's chunk, B's chunk: a serial number or FILE//EVENT)",
                path=path, line_no=line_no, text=line,
            )  # fmt: skip
        pair_id = ("map", line_no)
        for column, token, resolve in ((col_a, parts[0], resolve_a), (col_b, parts[1], resolve_b)):
            key = _map_token(token, resolve)
            if key in column:
                raise StreamfilterError(
                    f"{token} is paired twice (first on line {column[key][1]})",
                    path=path, line_no=line_no, text=line,
                )  # fmt: skip
            column[key] = pair_id
    if not col_a:
        raise StreamfilterError("the pairing map pairs no chunks", path=path)
    return col_a, col_b
