"""Frame access: from a chunk's ``Image filename`` and ``Event`` to per-panel pixels.

HDF5 files, and CBF / gzip-compressed CBF files (:mod:`.formats`, read as CrystFEL does).

:class:`FrameSource` resolves the image file name, parses the event ID
(:mod:`~streamfilter.frames.events`), reads every panel with as few HDF5 reads as possible
(one hyperslab per distinct dataset: panels that share an array are views into one read), and
builds the per-panel bad-pixel map exactly as CrystFEL does (``libcrystfel/src/image.c``,
``create_badmap``): non-finite values, ``no_index``, ``flag_*``, ``mask_edge_pixels``,
``maskN`` bit tests and bad regions.

Arrays are returned panel-relative, indexed ``[ss, fs]``: element ``[iss, ifs]`` of panel p
is array element ``(min_ss + iss, min_fs + ifs)`` of the 2-D slice, i.e. the pixel that
covers data-array positions ``FS in [min_fs + ifs, min_fs + ifs + 1)``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..geometry import Detector, Panel
from ._direct import DirectPlan
from .badmap import flagged, mask_bad, mask_dtype
from .errors import FrameNotFoundError, FrameReadError
from .events import EventID, parse_event, substitute_path
from .formats import CBF_GZ, HDF5, UnsupportedFormat, detect_format, flat_rows, read_cbf
from .hdf5 import ensure_filters, read_hyperslab
from .layout import PanelGroup, dims_text


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
    flat_data : numpy.ndarray or None
        Every panel's pixels one after the other in geometry order, each panel C-ordered
        ``[ss, fs]``, as one float32 1-D array of which the ``data`` arrays are views; None
        when the file does not store the panels that way (several arrays, gaps, another
        order).
    """

    filename: str
    event: str
    path: Path
    data: dict[str, np.ndarray]
    bad: dict[str, np.ndarray]
    saturation: dict[str, np.ndarray] | None
    header: dict[str, float] = field(default_factory=dict)
    flat_data: np.ndarray | None = None


def split_roots(roots: Sequence[str | Path]) -> tuple[list[Path], list[tuple[str, Path]]]:
    """Search dirs and ``OLD=NEW`` prefix replacements from ``--data-root`` values.

    An entry is a replacement when it holds ``=`` and is not an existing directory (a
    directory whose name holds ``=`` stays a directory); it is split at the first ``=``.
    """
    dirs: list[Path] = []
    maps: list[tuple[str, Path]] = []
    for r in roots:
        text = str(r)
        old, eq, new = text.partition("=")
        if eq and old and new and not Path(text).is_dir():
            maps.append((old.rstrip("/") or "/", Path(new)))
        else:
            dirs.append(Path(r))
    return dirs, maps


def candidate_paths(filename: str, dirs: Sequence[Path],
                    maps: Sequence[tuple[str, Path]] = ()) -> list[Path]:
    """Where :meth:`FrameSource.resolve` looks for ``filename``, in order."""
    out: list[Path] = []
    for old, new in maps:
        if filename == old:
            out.append(new)
        elif filename.startswith(old if old.endswith("/") else old + "/"):
            out.append(new / filename[len(old):].lstrip("/"))
    name = Path(filename)
    if name.is_absolute():
        out.append(name)
    parts = [p for p in name.parts if p != name.anchor]
    for k in range(len(parts), 0, -1):
        tail = Path(*parts[-k:])
        out += [d / tail for d in dirs]
    if not name.is_absolute():
        out.append(name)
    return out


class FrameSource:
    """Reads frames named by stream chunks from HDF5 files.

    Parameters
    ----------
    detector : Detector
        Parsed geometry (the stream's own, or a ``.geom`` file).
    search_dirs : sequence of path-like
        Where image files are looked up (normally the stream's directory and every
        ``--data-root``): directories, and ``OLD=NEW`` prefix replacements (an entry that
        is not an existing directory and holds ``=``; see :meth:`resolve`).
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
        self.search_dirs, self.path_maps = split_roots(search_dirs)
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
        self._formats: dict[str, str] = {}  # resolved path -> HDF5, CBF or CBF.gz
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
    def _make_groups(members: list[tuple[Panel, str, str | None]]) -> list[PanelGroup]:
        groups: dict[tuple, list[Panel]] = {}
        for p, template, file in members:
            roles = tuple(r if isinstance(r, str) else "#" for r in p.dims)
            groups.setdefault((template, file, roles), []).append(p)
        return [PanelGroup(t, f, ps) for (t, f, _), ps in groups.items()]

    # -- pickling, context manager -----------------------------------------------------------

    def __getstate__(self) -> dict:
        return {
            "detector": self.detector,
            "search_dirs": self.search_dirs,
            "path_maps": self.path_maps,
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
        self._datasets.clear()
        self._file_keys.clear()
        while self._files:
            _, f = self._files.popitem(last=False)
            f.close()

    # -- files -------------------------------------------------------------------------------

    def resolve(self, filename: str) -> Path:
        """Find the image file named in a stream.

        Tries, in order: each ``OLD=NEW`` replacement whose ``OLD`` is a leading part of
        ``filename`` (whole components); an absolute ``filename`` as written; each search
        dir joined with the last k components of ``filename``, for k from all of them down
        to 1 (the base name), longest first across the dirs (so a moved beamtime's run
        folders are all found under one ``--data-root``); a relative ``filename`` as
        written (relative to the current directory).

        Raises
        ------
        FrameNotFoundError
            Listing every path tried.
        """
        hit = self._resolved.get(filename)
        if hit is not None:
            return hit
        tried: list[str] = []
        for c in candidate_paths(filename, self.search_dirs, self.path_maps):
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
            try:
                kind = detect_format(path)
            except (UnsupportedFormat, OSError) as why:
                raise FrameReadError(filename, event, f"cannot open '{path}': {why}") from e
            reason = f"cannot open '{path}' as HDF5 (unreadable or truncated): {e}"
            if kind != HDF5:
                reason = f"'{path}' is a {kind} file where an HDF5 file is needed"
            raise FrameReadError(filename, event, reason) from e
        self._files[key] = f
        self._file_keys[id(f)] = key
        while len(self._files) > self.max_open_files:
            old_key, old = self._files.popitem(last=False)
            for k in [k for k in self._datasets if k[0] == old_key]:
                del self._datasets[k]
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
            ensure_filters(obj)
            st = self._datasets[key] = _Stored(obj, obj.ndim, obj.shape, obj.dtype)
            return st
        if obj is None:
            moved = self._follow_moved_link(f, path, filename, event)
            if moved is not None:  # not cached: the linked file may be closed by the LRU
                ensure_filters(moved)
                return _Stored(moved, moved.ndim, moved.shape, moved.dtype)
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

    def _follow_moved_link(self, f: h5py.File, path: str, filename: str,
                           event: str) -> h5py.Dataset | None:
        """The dataset behind an external link whose target file HDF5 did not find.

        HDF5 finds a link's file by its name as written and relative to the linking file's
        directory, so relative links survive a move of the whole tree; an absolute target
        (``/gpfs/old/raw/data_000.h5``) does not.  Such a target is looked up like an image
        file (``--data-root`` dirs and ``OLD=NEW`` replacements, then the linking file's
        directory).  None when ``path`` passes through no external link.

        Raises
        ------
        FrameReadError
            The link's target file is not found anywhere.
        """
        parts = [x for x in path.split("/") if x]
        for i in range(1, len(parts) + 1):
            try:
                link = f.get("/" + "/".join(parts[:i]), getlink=True)
            except (KeyError, ValueError, OSError):
                return None
            if link is None:
                return None
            if not isinstance(link, h5py.ExternalLink):
                continue
            dirs = [*self.search_dirs, Path(f.filename).parent]
            tried = candidate_paths(link.filename, dirs, self.path_maps)
            for c in tried:
                if c.is_file():
                    target = self._open(c, filename, event)
                    obj = target.get("/".join([link.path.rstrip("/"), *parts[i:]]))
                    return obj if isinstance(obj, h5py.Dataset) else None
            raise FrameReadError(filename, event, (
                f"'{path}' in {f.filename} is an external link to '{link.filename}', which "
                "is not found (tried " + ", ".join(str(c) for c in tried) + "); give its new "
                "place with --data-root DIR or --data-root OLD=NEW"
            ))  # fmt: skip
        return None

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
            raise FrameNotFoundError(filename, ev_text, e.searched, e.hint) from None
        try:
            ev = parse_event(ev_text)
        except ValueError as e:
            raise FrameReadError(filename, ev_text, str(e)) from None
        if self._format(path, filename, ev_text) != HDF5:
            return self._load_cbf(path, ev, filename, ev_text)
        f = self._open(path, filename, ev_text)

        data: dict[str, np.ndarray] = {}
        float_data: set[str] = set()
        flat_data = None
        for g in self._data_groups:
            slab, is_float = self._read_data(f, g, ev, filename, ev_text)
            for p in g.panels:
                data[p.name] = slab[g.views[p.name]]
                if is_float:
                    float_data.add(p.name)
            if len(self._data_groups) == 1 and g.panels == list(self.detector.panels):
                span = g.flat_span(slab.shape)
                flat_data = None if span is None else slab.reshape(-1)[span[0] : span[1]]

        header = self._read_header(f, ev) if self._header_paths else {}
        bad, saturation = self._pixel_maps(f, path, ev, filename, ev_text, header, data,
                                           float_data)  # fmt: skip
        return Frame(filename, ev_text, path, data, bad, saturation, header, flat_data)

    def _pixel_maps(
        self,
        f: h5py.File | None,
        path: Path,
        ev: EventID,
        filename: str,
        event: str,
        header: dict[str, float],
        data: dict[str, np.ndarray],
        float_data: set[str],
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
        """The frame's bad-pixel map per panel (geometry, masks, ``flag_*`` values on the
        panels whose data are listed or float) and its saturation levels; ``f`` is the image
        file when it is HDF5 (masks may live in it), None for CBF."""
        shift = self.detector.detector_shift_m(header) if self._need_shift else (0.0, 0.0)
        mask_keys: list[tuple | None] = []
        masks: dict[str, list[np.ndarray]] = {}
        for g, bits in self._mask_groups:
            key, result = self._read_aux(f, path, g, ev, filename, event, bits=bits)
            mask_keys.append(key)
            for name, arr in result.items():
                masks.setdefault(name, []).append(arr)
        static_bad = self._static_bad(header, shift, mask_keys, masks)
        bad: dict[str, np.ndarray] = {}
        for p in self.detector.panels:
            arr = static_bad[p.name]
            if not p.no_index and (p.flags or p.name in float_data):
                arr = arr | flagged(data[p.name], p, p.name in float_data)
            bad[p.name] = arr
        return bad, self._read_saturation(f, path, ev, filename, event)

    def _format(self, path: Path, filename: str, event: str) -> str:
        """HDF5, CBF or CBF.gz (:func:`.formats.detect_format`), once per file."""
        key = str(path)
        kind = self._formats.get(key)
        if kind is None:
            try:
                kind = self._formats[key] = detect_format(path)
            except UnsupportedFormat as e:
                raise FrameReadError(filename, event, f"'{path}': {e}") from None
            except OSError as e:
                raise FrameReadError(filename, event, f"cannot open '{path}': {e}") from e
        return kind

    def _load_cbf(self, path: Path, ev: EventID, filename: str, event: str) -> Frame:
        """Read a CBF frame as CrystFEL does: every panel is ``min_fs..max_fs`` x
        ``min_ss..max_ss`` of the file's one array (``data`` and ``dim`` are not used), no
        header values, masks and saturation maps only from other (HDF5) files."""
        if self._header_paths:
            raise FrameReadError(filename, event, (
                "CBF files carry no header values (CrystFEL reads none from them), but the "
                f"geometry takes {', '.join(self._header_paths)} from the image header: give "
                "clen, photon_energy (or wavelength) and detector_shift_x/y as numbers in the "
                "geometry (e.g. clen = 0.130, photon_energy = 9800)"
            ))  # fmt: skip
        if any(g.file is None for g, _ in self._mask_groups) or any(
            g.file is None for g in self._sat_groups
        ):
            raise FrameReadError(filename, event, (
                "a mask or saturation map is to be read from the CBF image itself, which "
                "CrystFEL does not support: give it in an HDF5 file (mask_file = ..., "
                "saturation_map_file = ...)"
            ))  # fmt: skip
        try:
            arr, is_float = read_cbf(path, self._formats[str(path)] == CBF_GZ)
        except (OSError, ValueError) as e:
            raise FrameReadError(filename, event, f"'{path}': {e}") from e
        height, width = arr.shape
        data: dict[str, np.ndarray] = {}
        for p in self.detector.panels:
            if p.max_fs >= width or p.max_ss >= height:
                raise FrameReadError(filename, event, (
                    f"panel {p.name} (fs {p.min_fs}-{p.max_fs}, ss {p.min_ss}-{p.max_ss}) lies "
                    f"outside the CBF image of {width} (fs) x {height} (ss) pixels"
                ))  # fmt: skip
            data[p.name] = arr[p.min_ss : p.max_ss + 1, p.min_fs : p.max_fs + 1]
        float_data = set(data) if is_float else set()
        bad, saturation = self._pixel_maps(None, path, ev, filename, event, {}, data, float_data)
        flat = flat_rows(arr, self.detector.panels)
        return Frame(filename, event, path, data, bad, saturation, {}, flat)

    def _static_bad(self, header: dict[str, float], shift: tuple, mask_keys: list,
                    masks: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
        """Bad maps that do not depend on the pixel values (geometry and masks), cached when
        every mask is shared by all frames of its file."""
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
        return static_bad

    def _read_saturation(self, f: h5py.File | None, path: Path, ev: EventID, filename: str,
                         event: str) -> dict[str, np.ndarray] | None:
        """Per-panel saturation levels (+inf for panels without a map); None if no panel
        has a ``saturation_map``."""
        if not self._sat_groups:
            return None
        saturation: dict[str, np.ndarray] = {}
        for g in self._sat_groups:
            _, result = self._read_aux(f, path, g, ev, filename, event, bits=None)
            saturation.update(result)
        for p in self.detector.panels:
            if p.name not in saturation:
                saturation[p.name] = np.full((p.height, p.width), np.inf, dtype=np.float32)
        return saturation

    def _read_data(self, f: h5py.File, g: PanelGroup, ev: EventID, filename: str, event: str):
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
                f"(dims {dims_text(g.dims)})",
            )
        st = self._dataset(f, dpath, filename, event, "image")
        ds = st.ds
        if st.ndim != len(g.roles):
            raise FrameReadError(
                filename,
                event,
                f"'{dpath}' has shape {st.shape} (rank {st.ndim}) but the geometry declares "
                f"{len(g.roles)} dims {dims_text(g.dims)} for panel {g.panels[0].name}",
            )
        try:
            slab, out_shape = g.selection(st.shape, ev.dims, static=False)
        except ValueError as e:
            raise FrameReadError(filename, event, str(e).replace("{path}", dpath)) from None
        out = np.empty(out_shape, dtype=np.float32)
        if st.plan is False:
            st.plan = DirectPlan.of(ds)
        try:
            read_hyperslab(ds, slab, out, st.plan)
        except (OSError, ValueError, TypeError) as e:
            raise FrameReadError(filename, event, f"cannot read '{dpath}': {e}") from e
        return out, st.dtype.kind == "f"

    def _read_aux(
        self,
        f: h5py.File | None,  # not used: the file is opened through the LRU
        image: Path,
        g: PanelGroup,
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
                f"{dims_text(g.dims)} (rank {len(g.roles)}, or {len(g.roles) - g.n_placeholders} "
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
            dtype = mask_dtype(st.dtype, max(max(gb) for gb in bits.values()))
        out = np.empty(out_shape, dtype=dtype)
        try:
            read_hyperslab(ds, slab, out)
        except (OSError, ValueError, TypeError) as e:
            raise FrameReadError(str(afile), event, f"cannot read {what} '{dpath}': {e}") from e
        result: dict[str, np.ndarray] = {}
        for p in g.panels:
            arr = out[g.views[p.name]]
            if bits is not None:
                arr = mask_bad(arr, *bits[p.name])
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
                ensure_filters(ds)
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


@dataclass
class _Stored:
    """An open dataset and its metadata, read from HDF5 once."""

    ds: h5py.Dataset
    ndim: int
    shape: tuple[int, ...]
    dtype: np.dtype
    plan: DirectPlan | None | bool = False  # False: not looked at yet; owned here


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
