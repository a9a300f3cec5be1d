"""The stream core: exact round trips, parsed values, rewriting, errors, info and cat."""

from __future__ import annotations

import gzip
import io
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamfilter.cli import main
from streamfilter.errors import StreamFormatError
from streamfilter.stream import (
    ReflectionTable,
    StreamWriter,
    TableUpdate,
    format_reflections,
    read_stream,
    stream_from_bytes,
)
from streamfilter.stream.cat import cat_streams
from streamfilter.stream.info import stream_info
from streamfilter.stream.reader import BLOCK_SIZE

from .streamtext import build_stream

REF_STREAMS = ["lyso_dev_r345.stream", "lyso_dev_r234.stream", "lyso_dev_single_r345.stream"]


def roundtrip(data: bytes, **kw) -> bytes:
    out = io.BytesIO()
    with stream_from_bytes(data, **kw) as r:
        w = StreamWriter(out)
        w.write_header(r.header)
        for c in r:
            w.write_chunk(c)
        w.write(r.trailer)
    return out.getvalue()


def independent_rows(text: str) -> list[list[str]]:
    """Reflection rows found with plain string operations, one list per crystal."""
    tables = re.findall(r"Reflections measured after indexing\n[^\n]*\n(.*?)End of reflections",
                        text, re.S)
    return [t.splitlines() for t in tables]


# --- round trips ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", REF_STREAMS)
def test_ref_small_round_trip_is_byte_identical(ref_small, name):
    data = (ref_small / name).read_bytes()
    assert roundtrip(data) == data


@pytest.mark.parametrize("name", REF_STREAMS)
def test_ref_small_values_equal_the_printed_rows(ref_small, name):
    text = (ref_small / name).read_text()
    expected = independent_rows(text)
    got = []
    with read_stream(ref_small / name) as r:
        for chunk in r:
            for xtal in chunk.crystals:
                got.append(xtal.reflections)
                assert xtal.num_reflections == len(xtal.reflections)
    assert len(got) == len(expected)
    for table, rows in zip(got, expected):
        fields = [r.split() for r in rows]
        assert table.h.tolist() == [int(f[0]) for f in fields]
        assert table.l.tolist() == [int(f[2]) for f in fields]
        assert table.I.tolist() == [float(f[3]) for f in fields]
        assert table.background.tolist() == [float(f[6]) for f in fields]
        assert table.ss.tolist() == [float(f[8]) for f in fields]
        assert table.panel.tolist() == [f[9] for f in fields]


@pytest.mark.parametrize("version", ["2.1", "2.2", "2.3"])
def test_synthetic_streams_round_trip_and_parse(version):
    built = build_stream(seed=3, n_chunks=12, version=version)
    assert roundtrip(built.text) == built.text
    tables = []
    with stream_from_bytes(built.text) as r:
        assert r.version == version
        chunks = list(r)
        for c in chunks:
            tables += [x.reflections for x in c.crystals]
    assert len(chunks) == built.n_chunks
    assert len(tables) == built.n_crystals
    for table, rows in zip(tables, built.rows):
        assert table.h.tolist() == [r[0] for r in rows]
        assert table.I.tolist() == [r[3] for r in rows]
        assert table.sigma.tolist() == [r[4] for r in rows]
        assert table.fs.tolist() == [r[7] for r in rows]
        if version == "2.3":
            assert table.panel.tolist() == [r[9] for r in rows]
            assert table.peak.tolist() == [r[5] for r in rows]
        elif version == "2.2":
            assert table.panel is None and table.peak.tolist() == [r[5] for r in rows]
        else:
            assert table.panel is None and np.isnan(table.peak).all()


def test_multi_crystal_chunk_fields():
    built = build_stream(seed=5, n_chunks=10, max_crystals=3)
    with stream_from_bytes(built.text) as r:
        chunks = list(r)
    multi = [c for c in chunks if len(c.crystals) > 1]
    assert multi, "the builder should make multi-crystal chunks"
    c = multi[0]
    assert c.filename.startswith("data/run_") and c.event.startswith("//")
    assert c.photon_energy_eV == 12000.0 and c.beam_bandwidth == 1e-8
    assert c.keys["header/float//LCLS/photon_energy_eV"] == "9511.868397"
    assert c.keys["some_future_key"] == "kept verbatim"
    x = c.crystals[1]
    assert x.det_shift_mm == (0.012, -0.034)
    assert x.profile_radius == 0.00531 and x.resolution_limit == 4.59
    assert x.cell == (7.90749, 7.90749, 3.79693, 90.0, 90.0, 90.0)
    assert x.lattice_type == "tetragonal" and x.centering == "P" and x.unique_axis == "c"
    non_hits = [c for c in chunks if c.hit == 0]
    assert non_hits and all(not c.crystals for c in non_hits)


def test_overflowing_values_use_the_general_parser_and_format_like_printf():
    built = build_stream(seed=2, n_chunks=4, overflow=True)
    assert b"123456789.25" in built.text
    assert roundtrip(built.text) == built.text
    with stream_from_bytes(built.text) as r:
        tables = [x.reflections for c in r for x in c.crystals]
    assert 123456789.25 in tables[0].I.tolist()
    row = format_reflections(tables[0].take(np.array([0])))
    assert row.split()[3] == b"123456789.25"
    assert row.startswith(b"%4i" % tables[0].h[0])


def test_concatenated_gz_crlf_and_no_final_newline(tmp_path):
    a = build_stream(seed=1, n_chunks=5).text
    b = build_stream(seed=2, n_chunks=4).text
    joined = a + b
    assert roundtrip(joined) == joined
    with stream_from_bytes(joined) as r:
        chunks = list(r)
        assert len(chunks) == 9 and len(r.headers) == 2
        assert [c.index for c in chunks] == list(range(9))
    gz = tmp_path / "x.stream.gz"
    gz.write_bytes(gzip.compress(a))
    with read_stream(gz) as r:
        assert sum(1 for _ in r) == 5
    no_nl = a.rstrip(b"\n")
    assert roundtrip(no_nl) == no_nl
    crlf = a.replace(b"\n", b"\r\n")
    with stream_from_bytes(crlf) as r:
        assert r.crlf
        chunks = list(r)
        tables = [x.reflections for c in chunks for x in c.crystals]
    assert len(chunks) == 5
    with stream_from_bytes(a) as r:
        plain = [x.reflections for c in r for x in c.crystals]
    assert [t.I.tolist() for t in tables] == [t.I.tolist() for t in plain]
    assert [t.panel.tolist() for t in tables] == [t.panel.tolist() for t in plain]
    assert roundtrip(crlf) == crlf


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(0, 6), version=st.sampled_from(["2.2", "2.3"]),
       tail=st.sampled_from([b"", b"\n", b"garbage after the end\n"]))
def test_round_trip_property(seed, n, version, tail):
    data = build_stream(seed=seed, n_chunks=n, version=version).text + tail
    assert roundtrip(data) == data


# --- rewriting ------------------------------------------------------------------------------

def test_rewrite_changes_only_rows_and_counters(ref_small):
    data = (ref_small / "lyso_dev_r345.stream").read_bytes()
    with stream_from_bytes(data) as r:
        chunk = next(iter(r))
    xtal = chunk.crystals[0]
    t = xtal.reflections
    keep = np.arange(len(t)) % 3 != 0
    new = t.take(keep)
    new.I = new.I * 2
    body = chunk.rewrite({0: TableUpdate(new, num_saturated=4, num_implausible=7)})
    old_lines = chunk.raw.decode().splitlines()
    new_lines = body.decode().splitlines()
    start = old_lines.index("Reflections measured after indexing") + 2
    end = old_lines.index("End of reflections")
    assert new_lines[:start - 5] == old_lines[:start - 5]
    assert new_lines[start - 5:start - 2] == [
        f"num_reflections = {len(new)}", "num_saturated_reflections = 4",
        "num_implausible_reflections = 7"]
    assert new_lines[start - 2:start] == old_lines[start - 2:start]
    assert new_lines[start + len(new):] == old_lines[end:]
    reread = next(iter(stream_from_bytes(data[:len(data)].replace(chunk.raw, body))))
    assert reread.crystals[0].reflections.I.tolist() == new.I.tolist()
    # unchanged table -> identical bytes
    assert chunk.rewrite({0: TableUpdate(t, 0, 0)}) == chunk.raw


def test_format_refuses_nan_peak_and_never_zero_pads():
    t = ReflectionTable(np.array([-1], np.int32), np.array([0], np.int32),
                        np.array([10], np.int32), np.array([1.005]), np.array([np.nan]),
                        np.array([3.0]), np.array([0.125]), np.array([1.25]), np.array([2.0]),
                        np.array(["p0"]))
    assert format_reflections(t) == (b"  -1    0   10       1.00        nan       3.00       "
                                     b"0.12    1.2    2.0 p0\n")
    t.peak[:] = np.nan
    with pytest.raises(ValueError, match="NaN in the peak column"):
        format_reflections(t)


# --- info -------------------------------------------------------------------------------------

def test_info_counts_equal_independent_counts(tmp_path):
    built = build_stream(seed=11, n_chunks=20)
    p = tmp_path / "s.stream"
    p.write_bytes(built.text)
    info = stream_info(p)
    assert info["chunks"] == built.n_chunks
    assert info["hits"] == built.n_hits
    assert info["indexed_frames"] == built.n_indexed
    assert info["crystals"] == built.n_crystals
    assert info["crystals_per_indexer"] == {"xgandalf-nolatt-cell": built.n_crystals}
    assert info["reflections"] == built.n_reflections
    assert info["peaks"] == built.n_peaks
    assert info["int_radius"] == [3.0, 4.0, 6.0]
    assert info["integration_method"] == "rings-grad"
    assert info["cell"]["c_nm"]["median"] == 3.79693


def test_info_on_ref_small_matches_streamstats(ref_small):
    info = stream_info(ref_small / "lyso_dev_r234.stream")
    # streamstats.txt: 30 frames, 30 crystals, peaks/frame 162.2, 11262 reflections, 2.06 A
    assert (info["chunks"], info["crystals"], info["reflections"]) == (30, 30, 11262)
    assert round(info["peaks"] / 30, 1) == 162.2
    assert round(info["resolution_limit_nm_inv"]["median_d_A"], 2) == 2.06
    assert info["int_radius"] == [2.0, 3.0, 4.0]


# --- errors -------------------------------------------------------------------------------------

def corrupt(data: bytes, old: bytes, new: bytes, nth: int = 0) -> bytes:
    i = -1
    for _ in range(nth + 1):
        i = data.index(old, i + 1)
    return data[:i] + new + data[i + len(old):]


def line_of(data: bytes, needle: bytes) -> int:
    return data[:data.index(needle)].count(b"\n") + 1


BASE = build_stream(seed=7, n_chunks=6).text


@pytest.mark.parametrize("case", ["too_few_fields", "non_numeric", "missing_end_chunk",
                                  "truncated", "missing_end_refl", "missing_filename"])
def test_malformed_chunks_name_file_line_and_chunk(case, tmp_path):
    with stream_from_bytes(BASE) as r:
        chunks = list(r)
    target = next(c for c in chunks if c.crystals)
    row = target.raw[target.crystals[0].rows[0]:].split(b"\n", 1)[0]
    if case == "too_few_fields":
        data = corrupt(BASE, row, row.rsplit(b" ", 3)[0])
        needle = row.rsplit(b" ", 3)[0]
    elif case == "non_numeric":
        bad = row[:20] + b"x" + row[21:]
        data, needle = corrupt(BASE, row, bad), bad
    elif case == "missing_end_chunk":
        data = BASE.replace(target.raw, target.raw.replace(b"----- End chunk -----\n", b""))
        needle = target.raw[:40]
    elif case == "truncated":
        cut = BASE.index(row) + 10
        data, needle = BASE[:cut], target.raw[:40]
    elif case == "missing_end_refl":
        data = BASE.replace(target.raw, target.raw.replace(b"End of reflections\n", b"", 1))
        needle = b"Reflections measured after indexing"
    else:
        fn = target.raw.split(b"\n")[1]
        data = BASE.replace(target.raw, target.raw.replace(fn + b"\n", b""))
        needle = target.raw[:40]
    p = tmp_path / "bad.stream"
    p.write_bytes(data)
    # a cut last chunk is an incomplete tail: an error only with strict (cat --strict)
    strict = case == "truncated"
    with pytest.raises(StreamFormatError) as e:
        cat_streams([p], tmp_path / "out.stream", full_check=True, strict=strict)
    err = e.value
    assert err.path == str(p)
    assert err.chunk_no == target.index
    if case in ("too_few_fields", "non_numeric"):
        assert err.line_no == line_of(data, needle)
    else:
        assert err.line_no is not None and err.line_no >= target.line_no
    assert not (tmp_path / "out.stream").exists()
    assert list(tmp_path.iterdir()) == [p], "no temporary file may be left behind"
    # the command line says the same and exits with status 2
    assert main(["cat", str(p), "-o", str(tmp_path / "o.stream"), "--check-rows", "-q"]
                + ["--strict"] * strict) == 2
    # --keep-going copies the bad chunk verbatim and keeps every other chunk
    out = tmp_path / "kept.stream"
    s = cat_streams([p], out, keep_going=True, full_check=True)
    if strict:  # the tail is left out, not copied
        assert s.malformed == [] and len(s.incomplete_tails) == 1
        assert out.read_bytes() == data[:data.rindex(b"----- Begin chunk -----")]
        return
    assert len(s.malformed) == 1
    assert out.read_bytes() == data


def test_not_a_stream_and_empty_file(tmp_path):
    p = tmp_path / "x.stream"
    p.write_bytes(b"")
    with pytest.raises(StreamFormatError, match="empty file"):
        read_stream(p)
    p.write_bytes(b"hello\n")
    with pytest.raises(StreamFormatError, match="line 1: not a CrystFEL stream"):
        read_stream(p)


def _chunk_offsets(data: bytes) -> list[int]:
    """Offsets of the begin-marker lines, found independently of the reader."""
    out, i = [], data.find(b"----- Begin chunk -----\n")
    while i >= 0:
        if i == 0 or data[i - 1] == 10:
            out.append(i)
        i = data.find(b"----- Begin chunk -----\n", i + 1)
    return out


def test_line_numbers_counted_when_asked_are_exact(tmp_path):
    """A reader of a regular file counts lines only when asked (after the buffer has moved
    on, after close, after the file was renamed): the numbers equal an independent count and
    those of a reader that counts as it goes (a file object)."""
    built = build_stream(seed=3, n_chunks=40)
    head, body = built.text.split(b"----- Begin chunk -----\n", 1)
    body = b"----- Begin chunk -----\n" + body
    data = head + body * (3 * BLOCK_SIZE // len(body) + 2)  # several read blocks
    p = tmp_path / "big.stream"
    p.write_bytes(data)
    offsets = _chunk_offsets(data)
    expected, line, last = [], 1, 0
    for off in offsets:
        line += data.count(b"\n", last, off)
        expected.append(line)
        last = off
    with read_stream(p) as r:
        lazy = list(r)
    with open(p, "rb") as f, read_stream(f) as r:
        eager = [c.line_no for c in r]
    assert eager == expected
    p.rename(tmp_path / "moved.stream")
    order = np.random.default_rng(0).permutation(len(lazy))  # back and forth over the file
    assert {int(i): lazy[i].line_no for i in order} == dict(enumerate(expected))
    # an error in a late chunk, found after the reader went past it, names its line
    bad = data[:offsets[-2]] + data[offsets[-2]:].replace(b"End of reflections\n", b"", 1)
    p.write_bytes(bad)
    with read_stream(p) as r:
        chunks = list(r)
    victim = next(c for c in chunks[-2:] if c.crystals)
    with pytest.raises(StreamFormatError) as e:
        for x in victim.crystals:
            x.reflections  # noqa: B018
    assert e.value.chunk_no == victim.index
    assert victim.line_no == expected[victim.index]
    assert e.value.line_no > victim.line_no


def test_a_twin_counts_its_line_only_when_asked_and_parses_alone(tmp_path):
    """Chunk.twin (what -j N integrates, and the 2.2 -> 2.3 upgrade) shares the bytes and
    the lazy line number; parsing it leaves the original unparsed."""
    data = build_stream(seed=4, n_chunks=12).text
    p = tmp_path / "s.stream"
    p.write_bytes(data)
    expected = [data[:off].count(b"\n") + 1 for off in _chunk_offsets(data)]
    with read_stream(p) as r:
        chunks = list(r)
    last = chunks[-1]
    twin = last.twin()
    assert last.counted_line_no is None and twin.counted_line_no is None  # nothing counted
    assert twin.raw is last.raw and twin.index == last.index and twin.path == last.path
    assert twin.line_no == last.line_no == expected[last.index]
    first = chunks[0]
    other = first.twin(first.raw + b"", version="2.2")
    other.crystals  # noqa: B018
    assert other.version == "2.2" and other.marks is None and "_parsed" not in vars(first)
    n = 0
    for c in chunks:
        t = c.twin()
        got = [x.reflections.h.tolist() for x in t.crystals]
        assert "_parsed" not in vars(c)
        assert got == [x.reflections.h.tolist() for x in c.crystals]
        n += len(got)
    assert n > 0


def test_a_chunk_longer_than_the_read_buffer(tmp_path):
    """A chunk of several read blocks (a huge peak list) grows the buffer, the chunks after it
    shrink it back; everything round-trips and parses, line numbers included."""
    text = build_stream(seed=2, n_chunks=6).text
    head, rest = text.split(b"Peaks from peak search\n", 1)
    header_line, rest = rest.split(b"\n", 1)
    n = 3 * BLOCK_SIZE // 48
    rows = b"".join(b"%7.2f %7.2f %10.2f %10.2f p0\n" % (i % 97, i % 89, 1.5, i * 0.01)
                    for i in range(n))
    big = head + b"Peaks from peak search\n" + header_line + b"\n" + rows + rest
    p = tmp_path / "huge.stream"
    p.write_bytes(big)
    with read_stream(p) as r:
        chunks = list(r)
        trailer = r.trailer
    assert r.header.raw + b"".join(c.preceding + c.raw for c in chunks) + trailer == big
    assert len(chunks) == 6
    first = next(c for c in chunks if c.peaks is not None and len(c.peaks) >= n)
    assert len(first.peaks) >= n
    offsets = _chunk_offsets(big)
    assert [c.line_no for c in chunks] == [big.count(b"\n", 0, o) + 1 for o in offsets]


def test_chunk_scan_ignores_b_and_e_outside_markers(tmp_path):
    """The chunk scan looks for the B of "Begin" and the E of "End": panel and file names
    full of both letters, rows starting with '-' and non-marker "--- " lines change nothing
    (structure, round trip, cat's checks)."""
    text = build_stream(seed=5, n_chunks=12).text
    text = (text.replace(b" p0\n", b" EBp0E\n").replace(b" p1\n", b" BE-B\n")
            .replace(b"p0/", b"EBp0E/").replace(b"p1/", b"BE-B/")
            .replace(b"data/run_", b"BEGIN/END_")
            .replace(b"Peaks from peak search\n", b"--- Begin nothing, End nothing\n"
                                                   b"Peaks from peak search\n", 1))
    p = tmp_path / "be.stream"
    p.write_bytes(text)
    with stream_from_bytes(text) as r:
        reference = [(c.index, c.raw) for c in r]
    assert len(reference) == 12
    with read_stream(p) as r:
        chunks = list(r)
    assert [(c.index, c.raw) for c in chunks] == reference
    assert roundtrip(text) == text
    assert cat_streams([p], tmp_path / "out.stream").chunks == 12
    assert (tmp_path / "out.stream").read_bytes() == text
    # an end marker missing among all those letters is still found
    victim = chunks[4]
    broken = text.replace(victim.raw, victim.raw.replace(b"----- End chunk -----\n", b""))
    p.write_bytes(broken)
    with pytest.raises(StreamFormatError, match="no '----- End chunk -----' before the next"):
        cat_streams([p], tmp_path / "out2.stream")


# --- cat ------------------------------------------------------------------------------------------

def test_cat_single_input_is_identical_and_shards_join_back(tmp_path):
    built = build_stream(seed=9, n_chunks=9)
    src = tmp_path / "all.stream"
    src.write_bytes(built.text)
    cat_streams([src], tmp_path / "copy.stream")
    assert (tmp_path / "copy.stream").read_bytes() == built.text
    with stream_from_bytes(built.text) as r:
        header = r.header.raw
        chunks = list(r)
    shards = []
    for i in range(3):
        p = tmp_path / f"shard{i}.stream"
        p.write_bytes(header + b"".join(c.raw for c in chunks[3 * i:3 * i + 3]))
        shards.append(p)
    s = cat_streams(shards, tmp_path / "joined.stream")
    assert s.headers_dropped == 2
    assert (tmp_path / "joined.stream").read_bytes() == built.text


def test_cat_refuses_to_overwrite_its_input(tmp_path):
    p = tmp_path / "a.stream"
    p.write_bytes(BASE)
    assert main(["cat", str(p), "-o", str(p), "-q"]) == 2
    assert p.read_bytes() == BASE


def test_pipe_stdin_to_stdout():
    proc = subprocess.run([sys.executable, "-m", "streamfilter.cli", "cat", "-", "-o", "-"],
                          input=BASE, capture_output=True, check=True)
    assert proc.stdout == BASE
    assert b"6 chunks written" in proc.stderr
    info = subprocess.run([sys.executable, "-m", "streamfilter.cli", "info", "-", "--json", "-"],
                          input=BASE, capture_output=True, check=True)
    assert b'"chunks": 6' in info.stdout


# --- upgrade ----------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["2.1", "2.2"])
def test_upgrade_to_23_adds_panels_from_the_geometry(version, tmp_path):
    built = build_stream(seed=12, n_chunks=8, version=version)
    src = tmp_path / "old.stream"
    src.write_bytes(built.text)
    out = tmp_path / "new.stream"
    s = cat_streams([src], out, upgrade=True)
    assert s.upgraded_chunks == 8
    text = out.read_text()
    assert text.startswith("CrystFEL stream format 2.3\n")
    with read_stream(out) as r, read_stream(src) as old:
        assert r.version == "2.3"
        for new_chunk, old_chunk in zip(r, old):
            for nx, ox in zip(new_chunk.crystals, old_chunk.crystals):
                nt, ot = nx.reflections, ox.reflections
                assert nt.panel.tolist() == ["p0" if ss < 50 else "p1" for ss in ot.ss]
                assert nt.I.tolist() == ot.I.tolist() and nt.h.tolist() == ot.h.tolist()
                assert not np.isnan(nt.peak).any()
            np_, op = new_chunk.peaks, old_chunk.peaks
            assert np_.panel.tolist() == ["p0" if ss < 50 else "p1" for ss in op.ss]
            # every line outside the tables is unchanged
            strip = re.compile(rb"Reflections measured.*?End of reflections|"
                               rb"Peaks from peak search.*?End of peak list", re.S)
            assert strip.sub(b"", new_chunk.raw) == strip.sub(b"", old_chunk.raw)


def test_upgrade_refuses_rows_outside_every_panel(tmp_path):
    built = build_stream(seed=12, n_chunks=4, version="2.2")
    row = re.search(rb"\n( +-?\d+ +-?\d+ +-?\d+ +[-\d.]+ +[-\d.]+ +[-\d.]+ +[-\d.]+ +)"
                    rb"([-\d.]+) +([-\d.]+)\n", built.text)
    bad = built.text.replace(row.group(0), b"\n" + row.group(1) + b"500.0  500.0\n", 1)
    src = tmp_path / "old.stream"
    src.write_bytes(bad)
    with pytest.raises(StreamFormatError, match="lies on no panel"):
        cat_streams([src], tmp_path / "new.stream", upgrade=True)
