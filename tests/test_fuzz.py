"""Fuzzing: mutated real and synthetic streams through ``cat`` and ``reintegrate``.

Every mutated input (truncated anywhere, lines dropped or duplicated, numbers corrupted,
markers swapped, binary garbage, CR LF, very long lines, huge values, empty file, header
only) must give either a clean result or a :class:`~streamfilter.errors.StreamfilterError`
(exit status 2) naming the file, the line and, inside a chunk, the chunk; never another
exception, never a file at the output path after an error, never a temporary file left
behind.  With ``--keep-going`` every input chunk must come out either rewritten (only its
reflection rows and ``num_*`` counters changed) or copied verbatim, and the summary counts
must add up to the number of chunks in the input.  An input cut inside its last chunk (or
inside the begin line of one) counts as its complete chunks only: the incomplete tail is
left out, never copied and never an error (:func:`complete_part`).

The mutation engine and the checks are plain functions so that ``bench/fuzz_long.py`` runs
the same cases, many more of them, outside the default test run.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamfilter import reintegrate
from streamfilter.cli import main
from streamfilter.errors import StreamfilterError, StreamFormatError
from streamfilter.stream.cat import cat_streams

from .streamtext import build_stream

# --------------------------------------------------------------------------------------------
# Mutations
# --------------------------------------------------------------------------------------------

MARKERS = (
    b"----- Begin chunk -----",
    b"----- End chunk -----",
    b"--- Begin crystal",
    b"--- End crystal",
    b"Reflections measured after indexing",
    b"End of reflections",
    b"Peaks from peak search",
    b"End of peak list",
    b"----- Begin geometry file -----",
    b"----- End geometry file -----",
    b"CrystFEL stream format 2.3",
)
BAD_NUMBERS = (
    b"x",
    b"1e308",
    b"-1e308",
    b"1e999",
    b"nan",
    b"-inf",
    b"inf",
    b"0",
    b"-0",
    b"99999999999999999999999",
    b"",
    b"-",
    b"1.2.3",
    b"0x1F",
    b"\xff\xfe",
    b"1e-320",
    b"123456789012.5",
    b"-2147483649",
)
#: Lines whose values drive the integration (``huge_value`` rewrites one of them).
VALUE_KEYS = (
    b"photon_energy_eV = ",
    b"beam_bandwidth = ",
    b"astar = ",
    b"bstar = ",
    b"cstar = ",
    b"profile_radius = ",
    b"predict_refine/det_shift x = ",
    b"Event: ",
    b"Image filename: ",
    b"num_reflections = ",
    b"diffraction_resolution_limit = ",
    b"Image serial number: ",
    b"hit = ",
    b"num_peaks = ",
    b"centering = ",
    b"Cell parameters ",
)
HUGE_VALUES = (
    b"1e308 1e308 1e308",
    b"nan nan nan",
    b"0 0 0",
    b"-1e-300",
    b"1e-30 0 0",
    b"inf",
    b"0.0000000",
    b"-12000",
    b"//99999999",
    b"//-1",
    b"/nonexistent//",
    b"../../../../etc",
    b"x = 1e30 y = -1e30 mm",
    b"Z",
    b"1e6 1e6 1e6",
    b"1e30",
)
KINDS = (
    "truncate",
    "drop_line",
    "dup_line",
    "corrupt_number",
    "swap_marker",
    "garbage",
    "crlf_all",
    "crlf_line",
    "long_line",
    "huge_value",
    "nul_in_line",
    "empty",
    "header_only",
)
_NUMBER = re.compile(rb"(?<![\w.])[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Mutation:
    """One mutation: ``kind`` from :data:`KINDS`, ``where`` in [0, 1) picks the place,
    ``arg`` picks the variant (which marker, which bad number, how much garbage ...)."""

    kind: str
    where: float
    arg: int

    def __str__(self) -> str:
        return f"{self.kind}@{self.where:.4f}/{self.arg}"


def _line_starts(data: bytes) -> list[int]:
    return [0] + [m.end() for m in re.finditer(rb"\n", data) if m.end() < len(data)]


def _pick(seq: Sequence, where: float):
    return seq[min(int(where * len(seq)), len(seq) - 1)]


def apply_mutation(data: bytes, m: Mutation) -> bytes:
    """``data`` with mutation ``m`` applied (unchanged if ``m`` finds nothing to change)."""
    if m.kind == "empty":
        return b""
    if m.kind == "header_only":
        i = data.find(b"\n----- Begin chunk -----")
        return data if i < 0 else data[: i + 1]
    if m.kind == "truncate":
        return data[: int(m.where * len(data))]
    if m.kind == "crlf_all":
        return data.replace(b"\n", b"\r\n")
    if m.kind == "garbage":
        rng = np.random.default_rng(m.arg)
        at = int(m.where * len(data))
        return data[:at] + rng.bytes(int(rng.integers(1, 200))) + data[at:]
    starts = _line_starts(data)
    if not starts or not data:
        return data
    a = _pick(starts, m.where)
    b = data.find(b"\n", a)
    b = len(data) if b < 0 else b + 1
    if m.kind == "drop_line":
        return data[:a] + data[b:]
    if m.kind == "dup_line":
        return data[:b] + data[a:b] + data[b:]
    if m.kind == "crlf_line":
        return data[: b - 1] + b"\r\n" + data[b:] if data[b - 1 : b] == b"\n" else data
    if m.kind == "nul_in_line":
        return data[:a] + data[a:b][: (b - a) // 2] + b"\x00" + data[a + (b - a) // 2 :]
    if m.kind == "long_line":  # 50-150 kB, one in 25 of 2-4 MB
        n = 2_000_000 if m.arg % 25 == 0 else 50_000 + 997 * (m.arg % 50)
        filler = (b"9" if m.arg % 2 else b" x") * n
        return data[:a] + filler + b"\n" + data[a:]
    if m.kind == "corrupt_number":
        nums = list(_NUMBER.finditer(data))
        if not nums:
            return data
        n = _pick(nums, m.where)
        return data[: n.start()] + BAD_NUMBERS[m.arg % len(BAD_NUMBERS)] + data[n.end() :]
    if m.kind == "swap_marker":
        found = [mm for mk in MARKERS for mm in re.finditer(rb"(?m)^" + re.escape(mk), data)]
        if not found:
            return data
        found.sort(key=lambda mm: mm.start())
        mm = _pick(found, m.where)
        return data[: mm.start()] + MARKERS[m.arg % len(MARKERS)] + data[mm.end() :]
    if m.kind == "huge_value":
        key = VALUE_KEYS[m.arg % len(VALUE_KEYS)]
        found = list(re.finditer(rb"(?m)^" + re.escape(key) + rb"[^\n]*", data))
        if not found:
            return data
        mm = _pick(found, m.where)
        value = HUGE_VALUES[(m.arg // len(VALUE_KEYS)) % len(HUGE_VALUES)]
        return data[: mm.start()] + key + value + data[mm.end() :]
    raise ValueError(f"unknown mutation kind {m.kind!r}")


def mutate(data: bytes, mutations: Sequence[Mutation]) -> bytes:
    for m in mutations:
        data = apply_mutation(data, m)
    return data


# --------------------------------------------------------------------------------------------
# Independent views of a stream (plain byte operations, not the package's reader)
# --------------------------------------------------------------------------------------------

_BEGIN = re.compile(rb"(?m)^----- Begin chunk -----")
_TABLE = re.compile(rb"Reflections measured after indexing\r?\n.*?End of reflections\r?\n", re.S)
_COUNTER = re.compile(
    rb"(?m)^num_(?:reflections|saturated_reflections|implausible_reflections)"
    rb" = [^\r\n]*\r?\n"
)
_PROVENANCE = re.compile(rb"(?m)^streamfilter \S+ reintegrate [^\n]*\n")
# the line that marks a chunk passed through unchanged (after its begin marker)
_MARKER = re.compile(rb"(?m)^streamfilter_passed_through = [^\n]*\n")


def split_chunks(data: bytes) -> tuple[bytes, list[bytes]]:
    """The bytes before the first chunk-begin line and the pieces that start at each one."""
    starts = [m.start() for m in _BEGIN.finditer(data)]
    if not starts:
        return data, []
    ends = starts[1:] + [len(data)]
    return data[: starts[0]], [data[a:b] for a, b in zip(starts, ends)]


def without_tables(piece: bytes) -> bytes:
    """A chunk's bytes without reflection tables and ``num_*`` counter lines."""
    return _COUNTER.sub(b"", _TABLE.sub(b"", piece))


# --------------------------------------------------------------------------------------------
# Running one case and checking it
# --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one run gave: exit status (0 or 2), the error if any, and what was checked."""

    command: str
    keep_going: bool
    status: int
    error: StreamfilterError | None = None
    n_chunks: int = 0
    rewritten: int = 0
    verbatim: int = 0


_END = re.compile(rb"(?m)^----- End chunk -----")


def complete_part(data: bytes) -> bytes:
    """``data`` without an incomplete tail: a last chunk with no end-marker line, or the
    start of a begin-marker line cut off at the end of the file."""
    _, pieces = split_chunks(data)
    if pieces and not _END.search(pieces[-1]):
        return data[: len(data) - len(pieces[-1])]
    last = data[data.rfind(b"\n") + 1 :]
    if last and b"----- Begin chunk -----".startswith(last):
        return data[: len(data) - len(last)]
    return data


def header_lines(data: bytes) -> int:
    head, _ = split_chunks(data)
    return head.count(b"\n") + 1


def check_error(err: StreamfilterError, path: Path, data: bytes) -> None:
    """An error must name the file and the line, and the chunk when the line is in one."""
    text = str(err)
    assert "internal error" not in text, text
    assert str(path) in text, f"error does not name the file: {text}"
    if isinstance(err, StreamFormatError):
        assert err.path == str(path)
        assert err.line_no is not None, f"error does not name a line: {text}"
        assert f"line {err.line_no}" in text
        if err.line_no > header_lines(data):
            assert err.chunk_no is not None, f"error inside a chunk names no chunk: {text}"
            assert f"chunk {err.chunk_no}" in text
    elif "has no embedded geometry" not in text:  # the one error about the whole file
        assert re.search(r"line \d+", text), f"error does not name a line: {text}"


def run_case(
    data: bytes, workdir: Path, frames: Path | None, command: str, keep_going: bool
) -> Outcome:
    """Run ``command`` ("cat" or "reintegrate") on ``data`` and check every promise.

    ``frames`` is the HDF5 file the stream's chunks name (symlinked beside the input).
    Raises AssertionError (with the reason) when a promise is broken; any exception other
    than StreamfilterError propagates as the failure it is.
    """
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    src = workdir / "in.stream"
    src.write_bytes(data)
    if frames is not None:
        (workdir / frames.name).symlink_to(frames)
    out = workdir / "out.stream"
    before = sorted(p.name for p in workdir.iterdir())
    outcome = Outcome(command, keep_going, 0)
    summary = None
    try:
        if command == "cat":
            summary = cat_streams([src], out, keep_going=keep_going, full_check=True)
        else:
            # every chunk may be broken: accept a run that re-integrates none
            summary = reintegrate(str(src), str(out), keep_going=keep_going,
                                  allow_failed="100%")
    except StreamfilterError as e:
        outcome.status, outcome.error = 2, e
    assert src.read_bytes() == data, "the input was modified"
    after = sorted(p.name for p in workdir.iterdir())
    if outcome.status == 2:
        check_error(outcome.error, src, data)
        assert after == before, f"files left behind after an error: {after}"
        if keep_going:
            # only a broken header (empty file, not a stream, bad or no geometry) may stop it
            err = outcome.error
            assert (
                isinstance(err, StreamFormatError) and (err.line_no or 0) <= header_lines(data)
            ) or "has no embedded geometry" in str(err), f"--keep-going stopped: {err}"
        return outcome
    failed = command != "cat" and summary.counters["passed_through"]
    listed = ["out.stream.failed"] if failed else []
    assert after == sorted([*before, "out.stream", *listed]), f"unexpected files: {after}"
    result = out.read_bytes()
    data = complete_part(data)
    head_in, pieces_in = split_chunks(data)
    head_out, pieces_out = split_chunks(result)
    outcome.n_chunks = len(pieces_in)
    assert len(pieces_out) == len(pieces_in), f"{len(pieces_in)} chunks in, {len(pieces_out)} out"
    if command == "cat":
        assert result == data, "cat of one input must copy it byte for byte"
        assert summary.chunks == len(pieces_in)
        outcome.verbatim = len(pieces_in)
        return outcome
    assert _PROVENANCE.sub(b"", head_out, count=1) == head_in, "header changed"
    for i, (a, b) in enumerate(zip(pieces_in, pieces_out)):
        if a == _MARKER.sub(b"", b, count=1):
            outcome.verbatim += 1
        else:
            assert without_tables(a) == without_tables(b), (
                f"chunk {i} changed outside its reflection tables"
            )
            outcome.rewritten += 1
    c = summary.counters
    assert c["chunks"] == len(pieces_in), f"summary counts {c['chunks']} chunks"
    assert c["frames_read"] + c["passed_through"] + c["no_crystals"] == c["chunks"], c
    assert len(summary.passed_through) == c["passed_through"]
    for why in summary.passed_through:
        assert "internal error" not in why, why
    assert outcome.rewritten <= c["frames_read"]
    return outcome


def run_all(
    data: bytes,
    workdir: Path,
    frames: Path | None,
    commands: Sequence[str] = ("cat", "reintegrate"),
) -> list[Outcome]:
    """Every command with and without ``--keep-going`` on one mutated input."""
    out = []
    for command in commands:
        for keep_going in (False, True):
            out.append(
                run_case(
                    data, workdir / f"{command}-{int(keep_going)}", frames, command, keep_going
                )
            )
    return out


# --------------------------------------------------------------------------------------------
# Bases: a synthetic stream with frames, ref-small's r345 (first chunks) with its frames
# --------------------------------------------------------------------------------------------


def synth_base(directory: Path) -> tuple[bytes, Path]:
    """A small simulated data set (stream bytes, HDF5 file), fixed seed."""
    from streamfilter.synth import SynthConfig, generate

    ds = generate(directory, SynthConfig(seed=7, n_frames=6, panel_width=96, panel_height=96))
    return ds.stream_path.read_bytes(), ds.h5_path


def ref_base(ref_small: Path, n_chunks: int = 4) -> tuple[bytes, Path]:
    """The header and the first ``n_chunks`` chunks of ref-small's r345 stream."""
    data = (ref_small / "lyso_dev_r345.stream").read_bytes()
    head, pieces = split_chunks(data)
    return head + b"".join(pieces[:n_chunks]), ref_small / "lyso_dev.h5"


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> tuple[bytes, Path]:
    return synth_base(tmp_path_factory.mktemp("synth"))


mutations = st.lists(
    st.builds(
        Mutation, st.sampled_from(KINDS), st.floats(0, 1, exclude_max=True), st.integers(0, 10_000)
    ),
    min_size=1,
    max_size=3,
)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(muts=mutations)
def test_fuzz_synthetic_stream_with_frames(synth, muts, tmp_path_factory):
    data, frames = synth
    run_all(mutate(data, muts), tmp_path_factory.mktemp("case"), frames)


@FUZZ
@given(muts=mutations, seed=st.integers(0, 1000))
def test_fuzz_builder_streams_through_cat(muts, seed, tmp_path_factory):
    data = build_stream(seed=seed, n_chunks=6).text
    run_all(mutate(data, muts), tmp_path_factory.mktemp("case"), None, commands=("cat",))


@settings(FUZZ, max_examples=50)
@given(muts=mutations)
def test_fuzz_ref_small(ref_small, muts, tmp_path_factory):
    data, frames = ref_base(ref_small)
    run_all(mutate(data, muts), tmp_path_factory.mktemp("case"), frames)


# --------------------------------------------------------------------------------------------
# Every mutation kind on its own, and the failures the fuzzing found (regressions)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_each_mutation_kind(kind, synth, tmp_path):
    data, frames = synth
    for i, where in enumerate((0.05, 0.5, 0.95)):
        mutated = apply_mutation(data, Mutation(kind, where, 7 * i + 3))
        assert mutated != data
        run_all(mutated, tmp_path / f"{i}", frames)


def first_crystal_chunk(data: bytes) -> tuple[int, bytes]:
    """Index and bytes of the first chunk with a crystal."""
    _, pieces = split_chunks(data)
    return next((i, p) for i, p in enumerate(pieces) if b"--- Begin crystal" in p)


def _edit_chunk(data: bytes, old: bytes, new: bytes) -> bytes:
    i, piece = first_crystal_chunk(data)
    assert old in piece
    return data.replace(piece, piece.replace(old, new, 1), 1)


def _first_row(piece: bytes) -> bytes:
    return re.search(rb"fs/px  ss/px panel\n([^\n]*)\n", piece).group(1)


# name -> (edit of the first chunk with a crystal, message); each of these crashed with a
# traceback, hung, or stopped a --keep-going run before it was fixed
REGRESSIONS = {
    "crystal without astar": (
        lambda d, p: _edit_chunk(d, re.search(rb"astar = [^\n]*\n", p).group(0), b""),
        "crystal has no astar/bstar/cstar",
    ),
    "astar 1e308 (overflows to inf in m^-1)": (
        lambda d, p: _edit_chunk(
            d, re.search(rb"astar = [^\n]*\n", p).group(0), b"astar = 1e308 0 0 nm^-1\n"
        ),
        "not finite, independent vectors",
    ),
    "photon energy 0": (
        lambda d, p: _edit_chunk(
            d, re.search(rb"photon_energy_eV = [^\n]*", p).group(0), b"photon_energy_eV = 0"
        ),
        "photon_energy_eV = 0 is not a plausible photon energy",
    ),
    "photon energy 1e30 eV (the prediction ran for ever)": (
        lambda d, p: _edit_chunk(
            d, re.search(rb"photon_energy_eV = [^\n]*", p).group(0), b"photon_energy_eV = 1e30"
        ),
        "photon_energy_eV = 1e+30 is not a plausible photon energy",
    ),
    "Miller index beyond int32": (
        lambda d, p: _edit_chunk(d, _first_row(p), b"99999999999" + _first_row(p)[4:]),
        "h is out of range",
    ),
    "non-UTF-8 bytes in a row": (
        lambda d, p: _edit_chunk(
            d, _first_row(p), _first_row(p)[:30] + b"\xff\xfe" + _first_row(p)[32:]
        ),
        "reflection row: ",
    ),
    "peak list without its end": (
        lambda d, p: _edit_chunk(d, b"End of peak list\n", b""),
        "peak list without 'End of peak list'",
    ),
    "crystal without its end": (
        lambda d, p: _edit_chunk(d, b"--- End crystal\n", b""),
        "crystal without '--- End crystal'",
    ),
}


@pytest.mark.parametrize("name", REGRESSIONS)
def test_regressions_name_the_chunk_or_pass_it_through(name, synth, tmp_path, capsys):
    data, frames = synth
    edit, message = REGRESSIONS[name]
    index, piece = first_crystal_chunk(data)
    bad = edit(data, piece)
    line = data[: data.index(piece)].count(b"\n") + 1
    src = tmp_path / "in.stream"
    src.write_bytes(bad)
    (tmp_path / frames.name).symlink_to(frames)
    out = tmp_path / "out.stream"
    assert main(["reintegrate", str(src), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"streamfilter reintegrate: error: {src}, line ")
    assert f", chunk {index}: " in err and message in err, err
    assert int(re.search(r"line (\d+)", err).group(1)) >= line
    assert not out.exists()
    summary = reintegrate(str(src), str(out), keep_going=True)
    assert summary.counters["passed_through"] == 1
    assert message in summary.passed_through[0]
    passed = split_chunks(out.read_bytes())[1][index]
    assert _MARKER.sub(b"", passed, count=1) == split_chunks(bad)[1][index] != passed
    run_all(bad, tmp_path / "all", frames)


@pytest.mark.parametrize(
    "edit, line_of, message",
    [
        (
            lambda g: g.replace(b"p0/corner_x = -48.3", b"p0/corner_x = x"),
            b"p0/corner_x",
            "embedded geometry, key 'p0/corner_x': expected a number, got 'x'",
        ),
        (
            lambda g: g.replace(b"clen = 0.075\n", b""),
            b"----- Begin geometry file",
            "embedded geometry, key 'clen': the geometry does not give clen",
        ),
    ],
)
def test_embedded_geometry_errors_name_the_stream_line(edit, line_of, message, synth, tmp_path):
    data, frames = synth
    bad = edit(data)
    src = tmp_path / "in.stream"
    src.write_bytes(bad)
    with pytest.raises(StreamFormatError) as e:
        reintegrate(str(src), str(tmp_path / "out.stream"), keep_going=True)
    assert e.value.path == str(src) and message in str(e.value)
    assert e.value.line_no == bad[: bad.index(line_of)].count(b"\n") + 1


def test_worker_processes_give_the_same_bytes_and_errors(synth, tmp_path):
    """-j 2 with --keep-going writes what -j 1 writes (malformed chunks verbatim); without
    it the worker's error reaches the parent intact (it used to be unpicklable)."""
    data, frames = synth
    index, piece = first_crystal_chunk(data)
    bad = REGRESSIONS["crystal without astar"][0](data, piece)
    last = split_chunks(bad)[1][-1]
    bad = bad.replace(last, last.replace(b"----- End chunk -----\n", b""))  # and cut short
    src = tmp_path / "in.stream"
    src.write_bytes(bad)
    (tmp_path / frames.name).symlink_to(frames)
    outs = []
    for jobs in (1, 2):
        out = tmp_path / f"j{jobs}.stream"
        s = reintegrate(str(src), str(out), keep_going=True, jobs=jobs, batch_size=2)
        outs.append((out.read_bytes(), dict(s.counters), s.passed_through))
    assert outs[0] == outs[1]
    assert outs[0][1]["passed_through"] == 1  # the cut last chunk is left out, not copied
    assert not outs[0][0].endswith(last.replace(b"----- End chunk -----\n", b""))
    errors = []
    for jobs in (1, 2):
        with pytest.raises(StreamFormatError) as e:
            reintegrate(str(src), str(tmp_path / "x.stream"), jobs=jobs, batch_size=2)
        errors.append((e.value.path, e.value.line_no, e.value.chunk_no, str(e.value)))
    assert errors[0] == errors[1] and errors[0][2] == index
