"""What a re-integration run is told: the configuration every worker gets, built from the
stream's header and the user's options, and the audit line the output header records."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamfilter.errors import StreamfilterError
from streamfilter.integrate import DEFAULT_METHOD, METHODS
from streamfilter.stream import StreamHeader

#: indexamajig's default ``--int-radius`` (pixels), used when the stream does not say
DEFAULT_RADII = (4.0, 5.0, 7.0)


@dataclass(frozen=True)
class ReintegrateConfig:
    """Everything a worker needs to re-integrate chunks (picklable, sent once per worker).

    Attributes
    ----------
    geometry_text : str
        CrystFEL geometry (the stream's embedded block or ``--geometry``).
    geometry_source : str
        Where it comes from, for messages: the ``--geometry`` file or ``<stream geometry>``.
    int_radius : (float, float, float)
        Peak, gap and background radii in pixels.
    method : str
        ``profile`` (default: profile fitting on the robust background), ``robust`` (robust
        background, summation) or ``crystfel`` (reproduces indexamajig's rings).
    gradient, keep_saturated : bool
        CrystFEL's ``-grad`` / ``-sat`` flags.  ``-sat`` keeps saturated reflections in
        every method; ``-grad`` applies to ``crystfel`` only (robust and profile model
        background gradients anyway).
    background : str or None
        Background model of the robust method (``--background``).
    search_dirs : tuple of str
        Where frames are looked for: the stream's directory, then ``--data-root`` dirs.
    strict : bool
        A frame that cannot be read is an error instead of a passed-through chunk.
    diagnostics : bool
        Also return per-reflection rows for ``--table``.
    stream_radii : (float, float, float) or None
        The radii indexamajig used (from the stream header).  crystfel mode uses them to
        judge which absent rows CrystFEL had predicted, when re-integrating with others.
    upgrade : bool
        The input is format 2.1/2.2: every chunk is first converted to 2.3 (panel names
        from the geometry, see :mod:`streamfilter.stream.upgrade`), as the output header says 2.3.
    keep_going : bool
        A chunk whose text cannot be used (a malformed row, a crystal without usable
        astar/bstar/cstar, ...) is passed through unchanged and counted instead of stopping
        the run with a :class:`~streamfilter.errors.StreamFormatError`.
    """

    geometry_text: str
    int_radius: tuple[float, float, float] = DEFAULT_RADII
    method: str = DEFAULT_METHOD
    gradient: bool = False
    keep_saturated: bool = False
    background: str | None = None
    search_dirs: tuple[str, ...] = ()
    strict: bool = False
    diagnostics: bool = False
    stream_radii: tuple[float, float, float] | None = None
    upgrade: bool = False
    keep_going: bool = False
    geometry_source: str = "<stream geometry>"

    def frame_source(self) -> Any:
        """A :class:`~streamfilter.frames.FrameSource` over the frames of this run: the
        geometry parsed (its ``detector``), the stream's directory and ``--data-root``
        searched.  The one way a stream's frames are opened."""
        from streamfilter.frames import FrameSource
        from streamfilter.geometry import parse_geometry

        try:
            detector = parse_geometry(self.geometry_text, self.geometry_source)
        except StreamfilterError:
            raise
        except Exception as e:  # noqa: BLE001 - named, not a traceback
            raise StreamfilterError(f"geometry: {e}") from e
        return FrameSource(detector, self.search_dirs)


    def integration(self) -> Any:
        """The :class:`~streamfilter.pipeline.frame.Integration` of this configuration: the
        method with its options, the radii, and indexamajig's flags and radii."""
        from streamfilter.integrate.rings import CrystfelOptions
        from streamfilter.pipeline.frame import Integration

        flags = CrystfelOptions(gradient=self.gradient, keep_saturated=self.keep_saturated)
        return Integration(
            method=self.method,
            radii=tuple(float(r) for r in self.int_radius),
            options=self._method_options(flags),
            indexamajig=flags,
            stream_radii=self.stream_radii,
        )

    def _method_options(self, flags: Any) -> Any:
        if self.method not in METHODS:
            raise StreamfilterError(
                f"unknown method {self.method!r} (choose from {', '.join(METHODS)})"
            )
        if self.method == "crystfel":
            if self.background is not None:
                raise StreamfilterError(
                    f"--background {self.background} is not used by --method crystfel "
                    "(its background is CrystFEL's flat mean, or a plane with the stream's "
                    "-grad); drop --background or use --method robust"
                )
            return flags
        from streamfilter.integrate.robust import RobustOptions

        # -sat keeps saturated reflections in every method; -grad is CrystFEL's plane
        # background, which robust and profile replace by their own (radial harmonics or a
        # local plane, both modelling gradients): it does not apply to them
        sat = self.keep_saturated
        if self.method == "robust":
            if self.background is None:
                return RobustOptions(keep_saturated=sat)
            return RobustOptions(self.background, keep_saturated=sat)
        if self.background not in (None, "radial"):
            raise StreamfilterError(
                f"--method profile (the default) works on the radial "
                f"background only, not --background {self.background}; "
                f"add --method robust to sum over that background"
            )
        from streamfilter.integrate.profile import ProfileOptions

        return ProfileOptions(robust=RobustOptions(keep_saturated=sat))


def provenance_line(config: ReintegrateConfig, *, paths: bool = True) -> bytes:
    """The audit line: version, method and its flags, radii, the geometry's source (the
    stream's embedded one, or the ``-g`` path made absolute), every ``--data-root`` and,
    for ``--method crystfel`` with ``-grad``, the background plane's solver (GSL or numpy).
    ``paths=False`` leaves the paths out (for a header near its limit)."""
    import os
    import shlex

    from streamfilter import __version__

    r = ",".join(f"{x:g}" for x in config.int_radius)
    extra = f" --background={config.background}" if config.background else ""
    grad = config.gradient and config.method == "crystfel"  # robust/profile do not use it
    flags = ("-grad" if grad else "") + ("-sat" if config.keep_saturated else "")
    if paths:
        where = "".join(f" --data-root={shlex.quote(d)}" for d in config.search_dirs[1:])
        if config.geometry_source == "<stream geometry>":
            where += "; geometry embedded in the input"
        else:
            where += f" --geometry={shlex.quote(os.path.abspath(config.geometry_source))}"
    else:
        roots = len(config.search_dirs) - 1
        where = f" (geometry and {roots} --data-root paths left out: header size limit)"
    if grad:  # the plane's last bits decide print ties: say which solver made them
        from streamfilter.integrate.plane import plane_solver

        where += f"; plane solver: {plane_solver()}"
    return (
        f"streamfilter {__version__} reintegrate --method={config.method}{flags}{extra} "
        f"--int-radius={r}{where}\n"
    ).encode()


def add_provenance(header: StreamHeader, config: ReintegrateConfig) -> bytes:
    """The header with one audit line added after ``Generated by ...``.

    CrystFEL's reader refuses a pre-geometry header over about 4 KiB (4090 bytes) and reads
    lines into a 1023-byte buffer; a line that would pass 1000 bytes or push the header past
    4000 bytes leaves its paths out, and if even that does not fit the header is returned
    unchanged.
    """
    raw = header.raw
    if config.upgrade:
        from streamfilter.stream.upgrade import Upgrader

        raw = Upgrader(header, geometry_text=config.geometry_text).header()
    first = raw.find(b"\n") + 1
    second = raw.find(b"\n", first) + 1
    at = second if raw[first:second].startswith(b"Generated by") else first
    geom = raw.find(b"----- Begin geometry file -----")
    audit = geom if geom >= 0 else len(raw)
    for paths in (True, False):
        line = provenance_line(config, paths=paths)
        if len(line) <= 1000 and audit + len(line) <= 4000:
            return raw[:at] + line + raw[at:]
    return raw


def config_for(
    header: StreamHeader,
    stream_path: str,
    *,
    method: str = DEFAULT_METHOD,
    int_radius: tuple[float, float, float] | None = None,
    background: str | None = None,
    geometry: str | None = None,
    data_roots: Iterable[str] = (),
    strict: bool = False,
    diagnostics: bool = False,
    keep_going: bool = False,
) -> ReintegrateConfig:
    """The configuration for a stream: radii and ``-grad``/``-sat`` default to those of its
    indexamajig command line (CrystFEL's 4,5,7 when absent)."""
    if geometry is not None:
        geometry_text = Path(geometry).read_text()
    elif header.geometry_text:
        geometry_text = header.geometry_text
    else:
        raise StreamfilterError(
            f"{stream_path}: the stream has no embedded geometry; give one with --geometry"
        )
    radii = int_radius or header.int_radius or DEFAULT_RADII
    flags = (header.integration_method or "rings").split(",")[0].replace(",", "-").split("-")
    stream_dir = "." if stream_path == "-" else str(Path(stream_path).resolve().parent)
    return ReintegrateConfig(
        geometry_text=geometry_text,
        int_radius=tuple(float(r) for r in radii),
        method=method,
        gradient="grad" in flags,
        keep_saturated="sat" in flags,
        background=background,
        search_dirs=(stream_dir, *map(str, data_roots)),
        strict=strict,
        diagnostics=diagnostics,
        stream_radii=header.int_radius or DEFAULT_RADII,
        upgrade=header.format_version in ("2.0", "2.1", "2.2"),
        keep_going=keep_going,
        geometry_source="<stream geometry>" if geometry is None else str(geometry),
    )
