"""Check a stream against what CrystFEL's own reader (0.10.2+) demands, line by line.

This is deliberately a separate, strict, line-oriented implementation of CrystFEL's rules
(``libcrystfel/src/stream.c``: ``stream_open_for_read``, ``read_headers``,
``stream_read_chunk``, ``read_crystal``, ``read_stream_reflections_2_3``), not our own
reader: it reads the file the way partialator and process_hkl do, so it catches what our
tolerant reader accepts but theirs would not (CR in the header, markers with trailing
spaces, rows with too few fields, NaN in ``peak``, counters that disagree with the rows,
unknown panel names).
"""

from __future__ import annotations

import re

from ..geometry import parse_geometry

_INT = r"[-+]?(?:0[xX][0-9a-fA-F]+|\d+)"
_FLT = r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf|infinity)"
_ROW = re.compile(rf"^\s*({_INT})\s+({_INT})\s+({_INT})" + rf"\s+({_FLT})" * 6
                  + r"\s+(\S{1,63})", re.I)
_PEAK = re.compile(rf"^\s*({_FLT})\s+({_FLT})\s+({_FLT})\s+({_FLT})\s+(\S{{1,64}})\s*$", re.I)


def crystfel_problems(data: bytes, name: str = "<stream>", limit: int = 50) -> list[str]:
    """Everything in ``data`` that CrystFEL >= 0.10.2 would reject or silently mis-read.

    Returns messages naming the line; an empty list means partialator and process_hkl read
    the stream exactly as one indexamajig wrote.
    """
    problems: list[str] = []

    def bad(line_no: int, msg: str) -> None:
        if len(problems) < limit:
            problems.append(f"{name}, line {line_no}: {msg}")

    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    if not lines or not lines[0].startswith(b"CrystFEL stream format 2.3"):
        bad(1, "line 1 must begin 'CrystFEL stream format 2.3' (readers >= 0.10.2)")
        return problems
    for i, raw in enumerate(lines[:200]):
        if raw.endswith(b"\r"):
            bad(i + 1, "CR in the header (CrystFEL compares its markers including LF and "
                "then cannot find the geometry)")
            return problems
        if raw.startswith(b"----- Begin chunk -----"):
            break
    try:
        geom_start = lines.index(b"----- Begin geometry file -----")
    except ValueError:
        bad(1, "no '----- Begin geometry file -----' line (readers >= 0.10 need it)")
        return problems
    audit = sum(len(x) + 1 for x in lines[1:geom_start])
    if audit > 4090:
        bad(2, f"{audit} bytes of audit lines before the geometry (CrystFEL allows ~4090)")
    try:
        geom_end = lines.index(b"----- End geometry file -----", geom_start)
    except ValueError:
        bad(geom_start + 1, "geometry block without end marker")
        return problems
    try:
        det = parse_geometry(b"\n".join(lines[geom_start + 1:geom_end]).decode() + "\n",
                             f"{name} (embedded geometry)")
        panels = {p.name for p in det.panels}
    except Exception as e:  # any parse failure means the stream cannot be opened
        bad(geom_start + 2, f"embedded geometry does not parse: {e}")
        return problems

    i = geom_end + 1
    n = len(lines)
    while i < n:
        if lines[i] != b"----- Begin chunk -----":
            i += 1
            continue
        start = i
        keys = set()
        i += 1
        while i < n and lines[i] != b"----- End chunk -----":
            line = lines[i].rstrip(b"\r")
            if line.startswith(b"Image filename: "):
                keys.add("filename")
            elif line.startswith(b"photon_energy_eV = "):
                keys.add("energy")
            elif line.strip() in (b"----- End chunk -----", b"--- Begin crystal",
                                  b"--- End crystal") and line != line.strip():
                bad(i + 1, "marker with leading/trailing whitespace")
            elif line == b"Peaks from peak search":
                i += 2
                while i < n and lines[i].rstrip(b"\r") != b"End of peak list":
                    if not _PEAK.match(lines[i].decode("utf-8", "replace")):
                        bad(i + 1, "peak row does not give 5 fields")
                    i += 1
            elif line == b"--- Begin crystal":
                i = _check_crystal(lines, i, panels, bad)
            i += 1
        if i >= n:
            bad(start + 1, "chunk without '----- End chunk -----'")
        if keys != {"filename", "energy"}:
            bad(start + 1, "chunk lacks 'Image filename:' or 'photon_energy_eV =' "
                "(CrystFEL stops reading the file here)")
        i += 1
    return problems


def _check_crystal(lines: list[bytes], i: int, panels: set[str], bad) -> int:
    start = i
    have = set()
    counters: dict[str, int] = {}
    rows = None
    i += 1
    while i < len(lines) and lines[i].rstrip(b"\r") != b"--- End crystal":
        line = lines[i].rstrip(b"\r").decode("utf-8", "replace")
        if line == "----- End chunk -----":
            bad(start + 1, "crystal without an exact '--- End crystal' line before the end of "
                "its chunk (CrystFEL's reader would consume the rest of the file)")
            return i - 1
        for v in ("astar", "bstar", "cstar"):
            if line.startswith(f"{v} = "):
                if len(re.findall(_FLT, line[8:], re.I)) < 3:
                    bad(i + 1, f"{v} needs three numbers")
                have.add(v)
        m = re.match(r"(num_\w+) = (\S+)$", line)
        if m:
            counters[m.group(1)] = int(m.group(2))
        if line == "Reflections measured after indexing":
            rows = 0
            i += 2
            while i < len(lines) and lines[i].rstrip(b"\r") != b"End of reflections":
                text = lines[i].decode("utf-8", "replace")
                m = _ROW.match(text)
                if not m:
                    bad(i + 1, "reflection row does not give 10 fields (CrystFEL drops the "
                        "rest of this crystal's table)")
                else:
                    if m.group(6).lower() == "nan":
                        bad(i + 1, "NaN in the peak column (partialator drops the row)")
                    if m.group(10) not in panels:
                        bad(i + 1, f"unknown panel {m.group(10)!r}")
                    for g in (1, 2, 3):
                        tok = m.group(g).lstrip("+-")
                        if len(tok) > 1 and tok.startswith("0"):
                            bad(i + 1, "zero-padded Miller index (read as octal by %i)")
                rows += 1
                i += 1
        i += 1
    if have != {"astar", "bstar", "cstar"}:
        bad(start + 1, "crystal without astar/bstar/cstar (partialator would crash)")
    if rows is not None and "num_reflections" in counters and counters["num_reflections"] != rows:
        bad(start + 1, f"num_reflections = {counters['num_reflections']} but {rows} rows")
    return i
