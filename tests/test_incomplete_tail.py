"""Streams that end inside their last chunk (still being written, or cut short).

The reader ends after the last complete chunk and reports where the incomplete tail began
(``reader.incomplete_tail``), as CrystFEL's process_hkl and partialator stop at it; ``info``,
``merge``, ``compare`` and ``cat`` give the results of the complete chunks alone, and no
command copies the tail into a stream it writes.  A file cut inside its header stays an
error; a chunk without an end marker followed by another chunk stays a malformed chunk.
"""

from __future__ import annotations

import gzip
import io
import json
import re

import numpy as np
import pytest

from streamfilter.analysis.compare import CompareOptions, compare_streams
from streamfilter.analysis.merge import merge_streams
from streamfilter.cli import main
from streamfilter.errors import StreamFormatError
from streamfilter.stream import read_stream
from streamfilter.stream.cat import cat_streams
from streamfilter.stream.index import build_index, read_range
from streamfilter.stream.info import format_info, stream_info

BEGIN = b"----- Begin chunk -----\n"
END = b"----- End chunk -----\n"


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A simulated stream with reflection tables (and its frames), fixed seed."""
    from streamfilter.synth import SynthConfig, generate

    ds = generate(tmp_path_factory.mktemp("synth"), SynthConfig(seed=3, n_frames=10))
    return ds.stream_path.read_bytes(), ds.h5_path


def cut_at(data: bytes, fraction: float) -> tuple[bytes, bytes]:
    """(the first ``fraction`` of the bytes, the complete chunks in them alone)."""
    cut = int(fraction * len(data))
    end = data.rindex(END, 0, cut) + len(END)
    assert data.find(BEGIN, end) < cut, "the cut must fall inside a chunk"
    return data[:cut], data[:end]


def line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _info_without_place(info: dict) -> dict:
    return {k: v for k, v in info.items() if k not in ("path", "bytes", "incomplete_tail")}


@pytest.mark.parametrize("fraction", [0.3, 0.6])
def test_reader_info_cat_see_the_complete_chunks(synth, fraction, tmp_path):
    data, _ = synth
    cut, whole = cut_at(data, fraction)
    n_whole = whole.count(BEGIN)
    tail_at = data.rindex(BEGIN, 0, len(cut))
    p, q = tmp_path / "cut.stream", tmp_path / "whole.stream"
    p.write_bytes(cut)
    q.write_bytes(whole)

    with read_stream(p) as reader:
        chunks = list(reader)
        tail = reader.incomplete_tail
    assert len(chunks) == n_whole
    assert b"".join(c.preceding + c.raw for c in chunks) == whole[len(reader.header.raw):]
    assert reader.trailer == b""
    assert (tail.path, tail.line_no, tail.chunk_no) == (str(p), line_of(cut, tail_at), n_whole)
    assert (tail.offset, tail.size) == (tail_at, len(cut) - tail_at)
    assert f"{p}, line {tail.line_no}, chunk {n_whole}: incomplete last chunk" in str(tail)
    # the same from a .gz and from standard input (no line counter on the file)
    gz = tmp_path / "cut.stream.gz"
    gz.write_bytes(gzip.compress(cut))
    for source in (gz, io.BytesIO(cut)):
        with read_stream(source) as reader:
            assert len(list(reader)) == n_whole
            assert reader.incomplete_tail.line_no == tail.line_no
            assert reader.incomplete_tail.chunk_no == n_whole

    # info: the counts of the complete chunks, and a warning naming file, line and chunk
    info, ref = stream_info(p), stream_info(q)
    assert _info_without_place(info) == _info_without_place(ref)
    assert info["chunks"] == n_whole and ref["incomplete_tail"] is None
    assert info["incomplete_tail"] == str(tail)
    assert f"warning: {tail}" in format_info(info)

    # cat: the complete chunks, never the tail; --strict makes it an error
    out = tmp_path / "out.stream"
    s = cat_streams([p], out)
    assert out.read_bytes() == whole
    assert s.chunks == n_whole and s.incomplete_tails == [str(tail)] and s.malformed == []
    assert cat_streams([p], tmp_path / "kg.stream", keep_going=True).malformed == []
    assert (tmp_path / "kg.stream").read_bytes() == whole
    with pytest.raises(StreamFormatError) as e:
        cat_streams([p], tmp_path / "strict.stream", strict=True)
    assert (e.value.path, e.value.line_no, e.value.chunk_no) == (str(p), tail.line_no, n_whole)
    assert not (tmp_path / "strict.stream").exists()
    # two cut inputs joined: each contributes its complete chunks
    both = tmp_path / "both.stream"
    s = cat_streams([p, p], both)
    assert both.read_bytes() == whole + whole[whole.index(BEGIN):]
    assert len(s.incomplete_tails) == 2 and s.headers_dropped == 1


def test_cat_and_info_command_lines(synth, tmp_path, capsys):
    data, _ = synth
    cut, whole = cut_at(data, 0.45)
    p = tmp_path / "cut.stream"
    p.write_bytes(cut)
    out = tmp_path / "out.stream"
    assert main(["cat", str(p), "-o", str(out), "-q"]) == 0
    err = capsys.readouterr().err
    assert re.search(rf"cat: warning: {re.escape(str(p))}, line \d+, chunk \d+: incomplete "
                     r"last chunk.*\(not copied\)", err), err
    assert out.read_bytes() == whole
    assert main(["cat", str(p), "-o", str(tmp_path / "s.stream"), "-q", "--strict"]) == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "s.stream").exists()
    assert main(["info", str(p), "-q", "--json", "-"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["chunks"] == whole.count(BEGIN) and "incomplete last chunk" in got[
        "incomplete_tail"]


@pytest.mark.parametrize("fraction", [0.3, 0.6])
def test_merge_and_compare_use_the_complete_chunks(synth, fraction, tmp_path, capsys):
    data, _ = synth
    cut, whole = cut_at(data, fraction)
    p, q = tmp_path / "cut.stream", tmp_path / "whole.stream"
    p.write_bytes(cut)
    q.write_bytes(whole)
    got, merger = merge_streams([p], "1")
    ref, ref_merger = merge_streams([q], "1")
    assert len(got.h) > 0
    for name in ("h", "k", "l", "I", "sigma", "nmeas"):
        assert np.array_equal(getattr(got, name), getattr(ref, name))
    assert len(merger.stats.incomplete_tails) == 1 and ref_merger.stats.incomplete_tails == []
    assert str(p) in merger.stats.incomplete_tails[0]
    # the command line merges and warns
    assert main(["merge", str(p), "-y", "1", "-o", str(tmp_path / "m.hkl"), "-q"]) == 0
    assert "merge: warning: " + str(p) in capsys.readouterr().err
    # compare: the cut stream against itself gives what the complete chunks give
    opts = CompareOptions(symmetry="1")
    a = compare_streams(str(p), str(p), opts)
    b = compare_streams(str(q), str(q), opts)
    assert len(a.warnings) == 2 and b.warnings == []
    got_text = json.dumps(a.report, default=str).replace(str(p), "IN")
    assert got_text == json.dumps(b.report, default=str).replace(str(q), "IN")


def test_reintegrate_leaves_the_tail_out_and_merge_reads_its_output(synth, tmp_path):
    from streamfilter import reintegrate

    data, frames = synth
    cut, whole = cut_at(data, 0.6)
    p = tmp_path / "cut.stream"
    p.write_bytes(cut)
    (tmp_path / frames.name).symlink_to(frames)
    for keep_going in (False, True):
        out = tmp_path / f"out{int(keep_going)}.stream"
        s = reintegrate(str(p), str(out), keep_going=keep_going)
        assert s.counters["chunks"] == whole.count(BEGIN)
        result = out.read_bytes()
        assert result.count(BEGIN) == result.count(END) == whole.count(BEGIN)
        merged, merger = merge_streams([out], "1")  # its own output reads cleanly
        assert len(merged.h) > 0 and merger.stats.incomplete_tails == []


def test_index_ranges_report_the_tail_with_whole_file_numbers(synth, tmp_path):
    data, _ = synth
    cut, whole = cut_at(data, 0.6)
    p = tmp_path / "cut.stream"
    p.write_bytes(cut)
    index = build_index(p, cache=False)
    n = len(index)  # chunk starts, the cut one included
    assert n == whole.count(BEGIN) + 1
    with read_range(index, n - 2, n) as reader:
        assert [c.index for c in reader] == [n - 2]
        assert reader.incomplete_tail.chunk_no == n - 1
        assert reader.incomplete_tail.line_no == int(index.lines[n - 1])


@pytest.mark.parametrize("keep", [1, 10, len(BEGIN) - 2, len(BEGIN) - 1])
def test_cut_inside_a_begin_line_is_a_tail(synth, keep, tmp_path):
    data, _ = synth
    at = data.index(BEGIN, data.index(END))  # the second chunk's begin line
    cut = data[: at + keep]
    p = tmp_path / "cut.stream"
    p.write_bytes(cut)
    with read_stream(p) as reader:
        assert len(list(reader)) == 1
        assert reader.trailer == b""
        t = reader.incomplete_tail
    assert (t.line_no, t.chunk_no, t.offset, t.size) == (line_of(data, at), 1, at, keep)
    out = tmp_path / "out.stream"
    cat_streams([p], out)
    assert out.read_bytes() == data[:at]
    # cut inside the first chunk's begin line: the header alone, no chunks
    first = data.index(BEGIN)
    p.write_bytes(data[: first + keep])
    with read_stream(p) as reader:
        assert list(reader) == [] and reader.incomplete_tail.chunk_no == 0
        assert reader.header.raw == data[:first]


def test_a_stream_cut_inside_its_header_is_an_error(synth, tmp_path):
    data, _ = synth
    first = data.index(BEGIN)
    geometry_end = data.index(b"----- End geometry file -----")
    p = tmp_path / "cut.stream"
    for cut, why in [
        (geometry_end - 200, "the geometry file"),  # inside a line of the geometry
        (data.rindex(b"\n", 0, geometry_end - 200) + 1, "the geometry file"),  # at a line end
        (first - 5, None),  # inside the last header line
    ]:
        p.write_bytes(data[:cut])
        with pytest.raises(StreamFormatError, match="ends inside its header") as e:
            stream_info(p)
        assert e.value.path == str(p) and e.value.line_no == line_of(data, cut)
        assert e.value.chunk_no is None
        if why:
            assert why in str(e.value)
        assert main(["cat", str(p), "-o", str(tmp_path / "o.stream"), "-q"]) == 2
        assert main(["info", str(p), "-q"]) == 2
    # a whole header and no chunk yet: a stream just started, no error and no tail
    p.write_bytes(data[:first])
    info = stream_info(p)
    assert info["chunks"] == 0 and info["incomplete_tail"] is None


def test_a_chunk_without_end_in_the_middle_is_still_malformed(synth, tmp_path):
    data, _ = synth
    second_end = data.index(END, data.index(END) + 1)
    bad = data[:second_end] + data[second_end + len(END):]
    p = tmp_path / "bad.stream"
    p.write_bytes(bad)
    with pytest.raises(StreamFormatError, match="before the next chunk begins"):
        stream_info(p)
    s = cat_streams([p], tmp_path / "out.stream", keep_going=True)
    assert len(s.malformed) == 1 and s.incomplete_tails == []
