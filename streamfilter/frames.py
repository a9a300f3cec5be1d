"""HDF5 frame access: from a chunk's ``Image filename`` and ``Event`` to per-panel pixels.

:class:`FrameSource` resolves the image file name, parses the event ID, reads every panel
with as few HDF5 reads as possible (one hyperslab per distinct dataset: panels that share an
array are views into one read), and builds the per-panel bad-pixel map exactly as CrystFEL
does (``image.c: create_badmap``): non-finite values, ``no_index``, ``flag_*``,
``mask_edge_pixels``, ``maskN`` bit tests and bad regions.

Event IDs (``spec/coordinates-and-geometry.md`` section 5.1)::

    event_id  := path_part* "//" dim_part?     e.g. "//", "//17", "run_3//", "run_3//2/17"

Path parts replace, in order, the ``%`` characters of the panel's ``data`` path; dim parts
(0-based) index, in order, the axes declared ``dimN = %``.

Arrays are returned panel-relative, indexed ``[ss, fs]``: element ``[iss, ifs]`` of panel p
is array element ``(min_ss + iss, min_fs + ifs)`` of the 2-D slice, i.e. the pixel that
covers data-array positions ``FS in [min_fs + ifs, min_fs + ifs + 1)``.
"""

from __future__ import annotations

import os
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .errors import StreamfilterError
from .geometry import Detector, Panel

__all__ = [
    "EventID",
    "Frame",
    "FrameError",
    "FrameNotFoundError",
    "FrameReadError",
    "FrameSource",
    "parse_event",
    "substitute_path",
]


# ---------------------------------------------------------------------------------------------
# Errors


class FrameError(StreamfilterError):
    """Base class of frame access errors (a StreamfilterError: exit status 2 in the CLI)."""


class FrameNotFoundError(FrameError):
    """The image file named by a chunk was not found.

    Attributes
    ----------
    filename : str
        ``Image filename`` as written in the stream.
    event : str or None
    searched : list of str
        Every path that was tried, in order.
    """

    def __init__(self, filename: str, event: str | None, searched: Sequence[str]):
        self.filename = filename
        self.event = event
        self.searched = list(searched)
        tried = "\n  ".join(self.searched) or "(nothing)"
        super().__init__(
            f"image file '{filename}' (event {event}) not found; tried:\n  {tried}\n"
            "Give the directory where indexamajig ran with --data-root."
        )


class FrameReadError(FrameError):
    """The image file exists but the frame cannot be read from it.

    Missing dataset, event out of range, array shape or rank that does not match the
    geometry, unreadable or truncated file, missing mask file ...

    Attributes
    ----------
    filename : str
        The file concerned (image or mask file).
    event : str or None
    reason : str
    """

    def __init__(self, filename: str, event: str | None, reason: str):
        self.filename = filename
        self.event = event
        self.reason = reason
        super().__init__(f"{filename} (event {event}): {reason}")


# ---------------------------------------------------------------------------------------------
# Events


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


# ---------------------------------------------------------------------------------------------
# Frames


@dataclass
class Frame:
    """One frame's pixels and bad-pixel map, per panel.

    Attributes
    ----------
    filename : str
        ``Image filename`` as given.
    event : str
        Event ID (``"//"`` when none was given).
    path : pathlib.Path
        Resolved image file.
    data : dict of str to numpy.ndarray
        Panel name -> float32 array (height, width), panel-relative ``[ss, fs]``, in ADU as
        stored (gains are not applied).  Panels that share an HDF5 array are views of one
        read.
    bad : dict of str to numpy.ndarray
        Panel name -> bool array (height, width), True = bad: masks, flags, bad regions,
        no_index, edge pixels, non-finite values.  May be a shared **read-only** array when
        nothing in it depends on the pixel values; copy before modifying.
    saturation : dict of str to numpy.ndarray or None
        Panel name -> float32 per-pixel saturation level (ADU; +inf for panels without a
        map), or None when no panel has a ``saturation_map``.
    header : dict of str to float
        Values of the HDF5 header fields the geometry refers to (``clen``,
        ``photon_energy``, ``detector_shift_*`` given as paths), for this frame.
    """

    filename: str
    event: str
    path: Path
    data: dict[str, np.ndarray]
    bad: dict[str, np.ndarray]
    saturation: dict[str, np.ndarray] | None
    header: dict[str, float] = field(default_factory=dict)


class _Group:
    """Panels whose pixels come from the same HDF5 array, read with one hyperslab.

    ``roles`` is the panels' dims with fixed indices replaced by ``'#'``; every panel of a
    group has the same roles.  The read covers, along each ss/fs/fixed axis, the bounding
    range of the member panels; placeholder axes take the event's index.
    """

    def __init__(self, template: str, file: str | None, panels: list[Panel]):
        self.template = template
        self.file = file
        self.panels = panels
        self.dims = panels[0].dims
        self.roles = tuple(r if isinstance(r, str) else "#" for r in self.dims)
        self.n_placeholders = self.roles.count("%")
        ranges = []
        for axis, role in enumerate(self.roles):
            if role == "ss":
                ranges.append((min(p.min_ss for p in panels), max(p.max_ss for p in panels) + 1))
            elif role == "fs":
                ranges.append((min(p.min_fs for p in panels), max(p.max_fs for p in panels) + 1))
            elif role == "#":
                vals = [int(p.dims[axis]) for p in panels]
                ranges.append((min(vals), max(vals) + 1))
            else:
                ranges.append(None)
        self.ranges = ranges
        self.views = {p.name: self._view(p) for p in panels}

    def _view(self, p: Panel) -> tuple:
        view: list = []
        for axis, role in enumerate(self.roles):
            lo = self.ranges[axis][0] if self.ranges[axis] else 0
            if role == "ss":
                view.append(slice(p.min_ss - lo, p.max_ss + 1 - lo))
            elif role == "fs":
                view.append(slice(p.min_fs - lo, p.max_fs + 1 - lo))
            elif role == "#":
                view.append(int(p.dims[axis]) - lo)
        return tuple(view)

    def selection(self, shape: tuple[int, ...], ev_dims: tuple[int, ...], static: bool):
        """Hyperslab (start, count) and output shape for a dataset of ``shape``.

        Placeholder and fixed-index axes have count 1 and are dropped from the output
        shape only for placeholders.  With ``static`` the placeholder axes are absent from
        the dataset (a mask or saturation map shared by all frames).  Raises ValueError with
        a readable reason.
        """
        keep = [r != "%" or not static for r in self.roles]
        roles = [r for r, k in zip(self.roles, keep, strict=True) if k]
        ranges = [g for g, k in zip(self.ranges, keep, strict=True) if k]
        start: list[int] = []
        count: list[int] = []
        out_shape: list[int] = []
        k = 0
        for axis, (role, rng) in enumerate(zip(roles, ranges, strict=True)):
            if role == "%":
                idx = ev_dims[k]
                k += 1
                if idx >= shape[axis]:
                    raise ValueError(
                        f"event index {idx} is out of range for axis {axis} "
                        f"(size {shape[axis]}) of '{{path}}', shape {shape}"
                    )
                start.append(idx)
                count.append(1)
            else:
                lo, hi = rng
                if hi > shape[axis]:
                    what = {"ss": "max_ss", "fs": "max_fs", "#": "fixed index"}[role]
                    raise ValueError(
                        f"the geometry needs {what} {hi - 1} on axis {axis} ({role}) but "
                        f"'{{path}}' has shape {shape}"
                    )
                start.append(lo)
                count.append(hi - lo)
                out_shape.append(hi - lo)
        return (tuple(start), tuple(count)), tuple(out_shape)


def _dims_text(roles: Sequence[str | int]) -> str:
    return "(" + ", ".join(str(r) for r in roles) + ")"


class FrameSource:
    """Reads frames named by stream chunks from HDF5 files.

    Parameters
    ----------
    detector : Detector
        Parsed geometry (the stream's own, or a ``.geom`` file).
    search_dirs : sequence of path-like
        Directories in which relative image file names are looked up (normally the
        stream's directory and any ``--data-root``).
    max_open_files : int
        Bound of the LRU cache of open ``h5py.File`` handles; evicted files are closed.

    Notes
    -----
    Not thread-safe (HDF5 serialises anyway); use one FrameSource per process.  It can be
    pickled (open files and caches are not carried over).  Masks and saturation maps that
    have fewer dimensions than the data (shared by all frames) are read once per file and
    cached.
    """

    _CACHE_SIZE = 16

    def __init__(
        self,
        detector: Detector,
        search_dirs: Sequence[str | Path] = (),
        *,
        max_open_files: int = 8,
    ):
        if max_open_files < 1:
            raise ValueError("max_open_files must be at least 1")
        self.detector = detector
        self.search_dirs = [Path(d) for d in search_dirs]
        self.max_open_files = max_open_files
        self._setup()

    def _setup(self) -> None:
        det = self.detector
        self._files: OrderedDict[str, h5py.File] = OrderedDict()
        # (file key, dataset path) -> the dataset and its metadata (h5py's ``ndim``, ``shape``
        # ... each cost a call into HDF5); id(open file) -> its key in ``_files``
        self._datasets: dict[tuple[str, str], _Stored] = {}
        self._file_keys: dict[int, str] = {}
        self._resolved: dict[str, Path] = {}
        # LRU caches: aux arrays shared by all frames of a file, static bad maps per
        # (detector shift, set of static masks), geometry-only bad maps per detector shift.
        self._static = _LRU(self._CACHE_SIZE)
        self._combined = _LRU(self._CACHE_SIZE)
        self._geom_bad = _LRU(self._CACHE_SIZE)
        self._data_groups = self._make_groups([(p, p.data, None) for p in det.panels])
        self._mask_groups = []
        for i in range(max((len(p.masks) for p in det.panels), default=0)):
            members = [
                (p, p.masks[i].data, p.masks[i].file)
                for p in det.panels
                if len(p.masks) > i and not p.no_index
            ]
            for g in self._make_groups(members):
                bits = {p.name: (p.masks[i].goodbits, p.masks[i].badbits) for p in g.panels}
                self._mask_groups.append((g, bits))
        sat_members = [
            (p, p.saturation_map, p.saturation_map_file)
            for p in det.panels
            if p.saturation_map is not None
        ]
        self._sat_groups = self._make_groups(sat_members)
        self._header_paths = det.header_paths()
        self._need_shift = any(not r.is_fsss for r in det.bad_regions)

    @staticmethod
    def _make_groups(members: list[tuple[Panel, str, str | None]]) -> list[_Group]:
        groups: dict[tuple, list[Panel]] = {}
        for p, template, file in members:
            roles = tuple(r if isinstance(r, str) else "#" for r in p.dims)
            groups.setdefault((template, file, roles), []).append(p)
        return [_Group(t, f, ps) for (t, f, _), ps in groups.items()]

    # -- pickling, context manager -----------------------------------------------------------

    def __getstate__(self) -> dict:
        return {
            "detector": self.detector,
            "search_dirs": self.search_dirs,
            "max_open_files": self.max_open_files,
        }

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._setup()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close every open HDF5 file."""
        for st in self._datasets.values():
            _DIRECT.pop(id(st.ds), None)
        self._datasets.clear()
        self._file_keys.clear()
        while self._files:
            _, f = self._files.popitem(last=False)
            f.close()

    # -- files -------------------------------------------------------------------------------

    def resolve(self, filename: str) -> Path:
        """Find the image file named in a stream.

        Tries, in order: each search dir joined with ``filename``; each search dir joined
        with the basename of ``filename``; ``filename`` as written (absolute, or relative
        to the current directory).

        Raises
        ------
        FrameNotFoundError
            Listing every path tried.
        """
        hit = self._resolved.get(filename)
        if hit is not None:
            return hit
        candidates = [d / filename for d in self.search_dirs]
        base = os.path.basename(filename)
        if base and base != filename:
            candidates += [d / base for d in self.search_dirs]
        candidates.append(Path(filename))
        tried: list[str] = []
        for c in candidates:
            if str(c) in tried:
                continue
            tried.append(str(c))
            if c.is_file():
                self._resolved[filename] = c
                return c
        raise FrameNotFoundError(filename, None, tried)

    def _resolve_aux(self, name: str, image: Path, filename: str, event: str) -> Path:
        """Find a mask or saturation-map file: search dirs, the image's directory, cwd."""
        p = Path(name)
        candidates = (
            [p]
            if p.is_absolute()
            else ([d / name for d in self.search_dirs] + [image.parent / name, p])
        )
        for c in candidates:
            if c.is_file():
                return c
        tried = ", ".join(str(c) for c in candidates)
        raise FrameReadError(
            filename, event, f"mask/saturation file '{name}' not found (tried {tried})"
        )

    def _open(self, path: Path, filename: str, event: str) -> h5py.File:
        key = str(path)
        f = self._files.get(key)
        if f is not None:
            self._files.move_to_end(key)
            return f
        try:
            f = h5py.File(key, "r")
        except OSError as e:
            raise FrameReadError(
                filename, event, f"cannot open '{path}' as HDF5 (unreadable or truncated): {e}"
            ) from e
        self._files[key] = f
        self._file_keys[id(f)] = key
        while len(self._files) > self.max_open_files:
            old_key, old = self._files.popitem(last=False)
            for k in [k for k in self._datasets if k[0] == old_key]:
                _DIRECT.pop(id(self._datasets.pop(k).ds), None)
            del self._file_keys[id(old)]
            old.close()
        return f

    def _dataset(self, f: h5py.File, path: str, filename: str, event: str, what: str) -> _Stored:
        key = (self._file_keys.get(id(f)) or f.filename, path)
        st = self._datasets.get(key)
        if st is not None:
            return st
        obj = f.get(path)
        if isinstance(obj, h5py.Dataset):
            _ensure_filters(obj)
            st = self._datasets[key] = _Stored(obj, obj.ndim, obj.shape, obj.dtype)
            return st
        # name what the nearest existing ancestor group holds, to make typos obvious
        parent_path = path
        parent = None
        while parent_path not in ("", "/") and not isinstance(parent, h5py.Group):
            parent_path = parent_path.rsplit("/", 1)[0] or "/"
            parent = f.get(parent_path)
        hint = ""
        if isinstance(parent, h5py.Group):
            names = sorted(parent.keys())[:10]
            hint = f"; '{parent.name}' holds: {', '.join(names) or '(nothing)'}"
        kind = "a group, not a dataset" if obj is not None else "missing"
        raise FrameReadError(
            filename, event, f"{what} dataset '{path}' in {f.filename} is {kind}{hint}"
        )

    # -- reading ------------------------------------------------------------------------------

    def load(self, filename: str, event: str | None) -> Frame:
        """Read one frame.

        Parameters
        ----------
        filename : str
            ``Image filename`` from the chunk (resolved with :meth:`resolve`).
        event : str or None
            ``Event`` from the chunk; None (streams from CrystFEL <= 0.9) means ``//``.

        Returns
        -------
        Frame

        Raises
        ------
        FrameNotFoundError
            The file is not found.
        FrameReadError
            Bad event ID, missing dataset, event out of range, array rank/shape that does
            not match the geometry, unreadable file or mask.
        """
        ev_text = "//" if event is None else event.strip()
        try:
            path = self.resolve(filename)
        except FrameNotFoundError as e:
            raise FrameNotFoundError(filename, ev_text, e.searched) from None
        try:
            ev = parse_event(ev_text)
        except ValueError as e:
            raise FrameReadError(filename, ev_text, str(e)) from None
        f = self._open(path, filename, ev_text)

        data: dict[str, np.ndarray] = {}
        float_data: set[str] = set()
        for g in self._data_groups:
            slab, is_float = self._read_data(f, g, ev, filename, ev_text)
            for p in g.panels:
                data[p.name] = slab[g.views[p.name]]
                if is_float:
                    float_data.add(p.name)

        header = self._read_header(f, ev) if self._header_paths else {}
        shift = self.detector.detector_shift_m(header) if self._need_shift else (0.0, 0.0)

        mask_keys: list[tuple | None] = []
        masks: dict[str, list[np.ndarray]] = {}
        for g, bits in self._mask_groups:
            key, result = self._read_aux(f, path, g, ev, filename, ev_text, bits=bits)
            mask_keys.append(key)
            for name, arr in result.items():
                masks.setdefault(name, []).append(arr)

        combined_key = None if None in mask_keys else (shift, tuple(mask_keys))
        static_bad = self._combined.get(combined_key) if combined_key else None
        if static_bad is None:
            geom_bad = self._geometry_bad(header, shift)
            static_bad = {}
            for p in self.detector.panels:
                arr = geom_bad[p.name]
                if masks.get(p.name):
                    arr = np.logical_or.reduce([arr, *masks[p.name]])
                    arr.flags.writeable = False
                static_bad[p.name] = arr
            if combined_key is not None:
                self._combined.put(combined_key, static_bad)

        bad: dict[str, np.ndarray] = {}
        for p in self.detector.panels:
            arr = static_bad[p.name]
            if not p.no_index and (p.flags or p.name in float_data):
                arr = arr | _flagged(data[p.name], p, p.name in float_data)
            bad[p.name] = arr

        saturation = None
        if self._sat_groups:
            saturation = {}
            for g in self._sat_groups:
                _, result = self._read_aux(f, path, g, ev, filename, ev_text, bits=None)
                saturation.update(result)
            for p in self.detector.panels:
                if p.name not in saturation:
                    saturation[p.name] = np.full((p.height, p.width), np.inf, dtype=np.float32)
        return Frame(filename, ev_text, path, data, bad, saturation, header)

    def _read_data(self, f: h5py.File, g: _Group, ev: EventID, filename: str, event: str):
        try:
            dpath = substitute_path(g.template, ev.path_parts, allow_extra=False)
        except ValueError as e:
            raise FrameReadError(filename, event, f"{e} (panel {g.panels[0].name})") from None
        if len(ev.dims) != g.n_placeholders:
            raise FrameReadError(
                filename,
                event,
                f"the event has {len(ev.dims)} dim part(s) but the geometry declares "
                f"{g.n_placeholders} placeholder axis/axes for '{dpath}' "
                f"(dims {_dims_text(g.dims)})",
            )
        st = self._dataset(f, dpath, filename, event, "image")
        ds = st.ds
        if st.ndim != len(g.roles):
            raise FrameReadError(
                filename,
                event,
                f"'{dpath}' has shape {st.shape} (rank {st.ndim}) but the geometry declares "
                f"{len(g.roles)} dims {_dims_text(g.dims)} for panel {g.panels[0].name}",
            )
        try:
            slab, out_shape = g.selection(st.shape, ev.dims, static=False)
        except ValueError as e:
            raise FrameReadError(filename, event, str(e).replace("{path}", dpath)) from None
        out = np.empty(out_shape, dtype=np.float32)
        if st.plan is False:
            st.plan = _DirectPlan.of(ds)
            if st.plan is not None:
                _register_direct(ds, st.plan)
        try:
            _read_hyperslab(ds, slab, out)
        except (OSError, ValueError, TypeError) as e:
            raise FrameReadError(filename, event, f"cannot read '{dpath}': {e}") from e
        return out, st.dtype.kind == "f"

    def _read_aux(
        self,
        f: h5py.File,
        image: Path,
        g: _Group,
        ev: EventID,
        filename: str,
        event: str,
        bits: dict[str, tuple[int, int]] | None,
    ) -> tuple[tuple | None, dict[str, np.ndarray]]:
        """Read a mask (``bits`` given: returns bad maps) or a saturation map (float32).

        Returns the cache key (None if the array is per-frame) and panel -> array.
        """
        what = "mask" if bits is not None else "saturation map"
        # always through the LRU: opening another mask file may have closed ``f``
        afile = image if g.file is None else self._resolve_aux(g.file, image, filename, event)
        fa = self._open(afile, filename, event)
        try:
            dpath = substitute_path(g.template, ev.path_parts, allow_extra=True)
        except ValueError as e:
            raise FrameReadError(filename, event, f"{what}: {e}") from None
        st = self._dataset(fa, dpath, str(afile), event, what)
        ds = st.ds
        static = st.ndim == len(g.roles) - g.n_placeholders and g.n_placeholders > 0
        if st.ndim != len(g.roles) and not static:
            raise FrameReadError(
                str(afile),
                event,
                f"{what} '{dpath}' has rank {st.ndim} but the geometry declares dims "
                f"{_dims_text(g.dims)} (rank {len(g.roles)}, or {len(g.roles) - g.n_placeholders} "
                "for a mask shared by all frames)",
            )
        key: tuple | None = None
        if static or g.n_placeholders == 0:
            key = (what, str(afile), dpath, id(g))
            hit = self._static.get(key)
            if hit is not None:
                return key, hit
        try:
            slab, out_shape = g.selection(st.shape, ev.dims, static=static)
        except (ValueError, IndexError) as e:
            reason = f"{what}: {str(e).replace('{path}', dpath)}"
            raise FrameReadError(str(afile), event, reason) from None
        if bits is None:
            dtype = np.dtype(np.float32)
        else:
            dtype = _mask_dtype(st.dtype, max(max(gb) for gb in bits.values()))
        out = np.empty(out_shape, dtype=dtype)
        try:
            _read_hyperslab(ds, slab, out)
        except (OSError, ValueError, TypeError) as e:
            raise FrameReadError(str(afile), event, f"cannot read {what} '{dpath}': {e}") from e
        result: dict[str, np.ndarray] = {}
        for p in g.panels:
            arr = out[g.views[p.name]]
            if bits is not None:
                arr = _mask_bad(arr, *bits[p.name])
            arr.flags.writeable = False
            result[p.name] = arr
        if key is not None:
            self._static.put(key, result)
        return key, result

    def _read_header(self, f: h5py.File, ev: EventID) -> dict[str, float]:
        """Values of the header fields the geometry names; a field that cannot be read is
        left out (an error is raised only where the value is needed)."""
        out: dict[str, float] = {}
        for hpath in self._header_paths:
            try:
                dpath = substitute_path(hpath, ev.path_parts, allow_extra=True)
                ds = f.get(dpath)
                if not isinstance(ds, h5py.Dataset):
                    continue
                _ensure_filters(ds)
                if ds.size == 1:
                    out[hpath] = float(np.asarray(ds[()]).ravel()[0])
                else:
                    idx = ev.dims[: ds.ndim]
                    val = np.asarray(ds[idx])
                    if val.size == 1:
                        out[hpath] = float(val.ravel()[0])
            except (ValueError, IndexError, OSError, TypeError):
                continue
        return out

    def _geometry_bad(self, header: dict[str, float], shift: tuple) -> dict[str, np.ndarray]:
        hit = self._geom_bad.get(shift)
        if hit is None:
            hit = {}
            for p in self.detector.panels:
                arr = self.detector.panel_bad_mask(p, header)
                arr.flags.writeable = False
                hit[p.name] = arr
            self._geom_bad.put(shift, hit)
        return hit


_PLUGINS_LOADED = False


def _ensure_filters(ds: h5py.Dataset) -> None:
    """Register hdf5plugin's filters (bitshuffle, LZ4, Blosc, ...) with HDF5 before a dataset
    that uses a filter HDF5 lacks is read.  Imported only then: it costs ~15 ms of start-up,
    and deflate/shuffle datasets (and our direct chunk reads) do not need it."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED or ds.chunks is None:  # contiguous datasets have no filters
        return
    dcpl = ds.id.get_create_plist()
    codes = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
    if all(h5py.h5z.filter_avail(c) for c in codes):
        return
    import hdf5plugin  # noqa: F401

    _PLUGINS_LOADED = True


@dataclass
class _Stored:
    """An open dataset and its metadata, read from HDF5 once."""

    ds: h5py.Dataset
    ndim: int
    shape: tuple[int, ...]
    dtype: np.dtype
    plan: _DirectPlan | None | bool = False  # False: not looked at yet


class _LRU:
    """A small bounded mapping that forgets the least recently used entry."""

    def __init__(self, size: int):
        self.size = size
        self._d: OrderedDict = OrderedDict()

    def get(self, key):
        v = self._d.get(key)
        if v is not None:
            self._d.move_to_end(key)
        return v

    def put(self, key, value) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)


# The direct-read plans of image datasets, by id(dataset), with a weak reference to the
# dataset: an entry goes away with its dataset (and is checked against id reuse).
_DIRECT: dict[int, tuple[weakref.ref, _DirectPlan]] = {}


def _register_direct(ds: h5py.Dataset, plan: _DirectPlan) -> None:
    key = id(ds)
    _DIRECT[key] = (weakref.ref(ds, lambda _: _DIRECT.pop(key, None)), plan)


def _read_hyperslab(ds: h5py.Dataset, slab: tuple, out: np.ndarray) -> None:
    """Read the hyperslab (start, count) into ``out``, converted to ``out.dtype``.

    A whole chunk of a dataset with a :class:`_DirectPlan` is inflated here; anything else
    is one H5Dread, HDF5 converting on the fly (no intermediate copy).
    """
    hit = _DIRECT.get(id(ds))
    if hit is not None and hit[0]() is ds and hit[1].read(ds, slab, out):
        return
    start, count = slab
    fspace = ds.id.get_space()
    fspace.select_hyperslab(start, count)
    ds.id.read(h5py.h5s.create_simple(out.shape), fspace, out)


_H5Z_DEFLATE, _H5Z_SHUFFLE = 1, 2


@dataclass(frozen=True)
class _DirectPlan:
    """How to read whole chunks of a deflate (optionally shuffled) dataset without HDF5's
    filter pipeline: the stored bytes of the chunk (``read_direct_chunk``), inflated with
    ISA-L when the ``isal`` package is there (~2.3 x faster than zlib), else zlib, then
    un-shuffled and converted to float32 with numpy.  The values are identical to what
    HDF5's own read and conversion give: the same inflate output, and the same C casts.

    Only used where it is exactly one chunk that a frame needs; anything else (other
    filters, partial chunks, skipped filters, unallocated chunks, ...) goes through
    :func:`_read_hyperslab`.
    """

    chunks: tuple[int, ...]
    dtype: np.dtype
    shuffle: bool

    @staticmethod
    def of(ds: h5py.Dataset) -> _DirectPlan | None:
        """The plan for ``ds``, or None when its layout or filters are not supported."""
        dtype = ds.dtype
        if ds.chunks is None or not (
            (dtype.kind in "iu" and dtype.itemsize <= 4) or dtype == np.dtype("<f4")
        ):
            return None
        dcpl = ds.id.get_create_plist()
        codes = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
        if codes not in ([_H5Z_DEFLATE], [_H5Z_SHUFFLE, _H5Z_DEFLATE]):
            return None
        return _DirectPlan(tuple(ds.chunks), dtype, len(codes) == 2 and dtype.itemsize > 1)

    def read(self, ds: h5py.Dataset, slab: tuple, out: np.ndarray) -> bool:
        """Read the hyperslab ``slab`` = (start, count) into ``out`` (converted to its
        dtype as HDF5 would) when it is exactly one chunk; False, ``out`` untouched, when
        this plan cannot do it."""
        start, count = slab
        if tuple(count) != self.chunks or any(s % c for s, c in zip(start, self.chunks)):
            return False
        try:
            mask, raw = ds.id.read_direct_chunk(tuple(start))
        except (OSError, KeyError, ValueError, MemoryError):  # h5py: a chunk never written
            return False
        if mask:  # some filter was skipped for this chunk
            return False
        n = out.size
        size = self.dtype.itemsize
        data = _inflate(raw, n * size)
        if data is None:
            return False
        planes = np.frombuffer(data, np.uint8)
        if self.shuffle:  # HDF5 stores byte j of every element together, j = 0..size-1
            planes = planes.reshape(size, n)
            # every value in 0..65535 (most detector frames): two planes, one pass (max is
            # a faster reduction than any)
            if (
                size == 4
                and self.dtype.kind in "iu"
                and self.dtype.byteorder in "<=|"
                and np.little_endian
            ):
                small = not planes[2:].max()
            else:
                small = False
            if small:
                low = planes[1].astype(np.uint16)
                low <<= 8
                low |= planes[0]
                np.copyto(out, low.reshape(out.shape), casting="unsafe")
                return True
            values = np.empty((n, size), np.uint8)
            for j in range(size):
                values[:, j] = planes[j]
            planes = values
        np.copyto(out, planes.view(self.dtype).reshape(out.shape), casting="unsafe")
        return True


def _inflate(raw: bytes, size: int) -> bytes | None:
    """zlib-inflate ``raw``; None unless it inflates to exactly ``size`` bytes."""
    try:
        data = _decompress()(raw, bufsize=size)
    except Exception:  # noqa: BLE001 - corrupt data: HDF5's own read reports it properly
        return None
    return data if len(data) == size else None


_DECOMPRESS: Callable[..., bytes] | None = None


def _decompress() -> Callable[..., bytes]:
    """ISA-L's zlib-compatible ``decompress`` when the ``isal`` package is installed (the
    same bytes as zlib, ~2.3 x faster), else zlib's."""
    global _DECOMPRESS
    if _DECOMPRESS is None:
        try:
            from isal.isal_zlib import decompress
        except ImportError:
            from zlib import decompress
        _DECOMPRESS = decompress
    return _DECOMPRESS


def _mask_dtype(stored: np.dtype, largest_bits: int) -> np.dtype:
    """Integer type to read a mask in: its own type when the bit masks fit (no widening
    copy), else int64 (CrystFEL reads masks as C int)."""
    if stored.kind in "ui" and stored.itemsize <= 8:
        usable = 8 * stored.itemsize - (1 if stored.kind == "i" else 0)
        if largest_bits < (1 << usable):
            return stored
    return np.dtype(np.int64)


def _mask_bad(m: np.ndarray, goodbits: int, badbits: int) -> np.ndarray:
    """CrystFEL's test: bad if ``(m & goodbits) != goodbits`` or ``(m & badbits) != 0``."""
    bad = np.zeros(m.shape, dtype=bool)
    if badbits:
        bad |= (m & badbits) != 0
    if goodbits:
        bad |= (m & goodbits) != goodbits
    return bad


def _flagged(values: np.ndarray, p: Panel, is_float: bool) -> np.ndarray:
    """Bad pixels that depend on the values: ``flag_*`` (float32 comparisons, as CrystFEL)
    and, for float datasets, non-finite values."""
    bad = ~np.isfinite(values) if is_float else np.zeros(values.shape, dtype=bool)
    for kind, v in p.flags:
        v32 = np.float32(v)
        if kind == "lessthan":
            bad |= values < v32
        elif kind == "morethan":
            bad |= values > v32
        else:
            bad |= np.rint(values) == v32
    return bad
