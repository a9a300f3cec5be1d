"""Chunks that could not be re-integrated never pass silently.

Frames missing (some or all), with ``-q``, ``-j 2``, ``--dask local`` and ``--resume``: the
exit status (3 when chunks with crystals were not re-integrated, 2 and no output when none
was), ``--allow-failed``, the ``OUT.failed`` file, the warning on standard error that ``-q``
does not hide, the marker line of passed-through chunks, the audit line and what ``info``
reports.  Also the small option checks of ``reintegrate``.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from streamfilter.cli import main
from streamfilter.pipeline.failures import FAILED_HEADER, Allowance, read_failed
from streamfilter.stream import read_stream
from streamfilter.stream.info import stream_info
from streamfilter.stream.validate import crystfel_problems
from streamfilter.synth import SynthConfig, generate

MARKER = re.compile(rb"(?m)^streamfilter_passed_through = ([^\n]*)\n")
AUDIT = re.compile(rb"(?m)^streamfilter \S+ reintegrate [^\n]*\n")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    return generate(d, SynthConfig(seed=5, n_frames=8))


def _chunks(path: Path) -> tuple[bytes, list[bytes]]:
    head, *rest = path.read_bytes().split(b"----- Begin chunk -----")
    return head, [b"----- Begin chunk -----" + c for c in rest]


def _with_crystals(synth) -> list[int]:
    with read_stream(str(synth.stream_path)) as r:
        return [c.index for c in r if c.crystals]


def _without_crystals(synth) -> list[int]:
    with read_stream(str(synth.stream_path)) as r:
        return [c.index for c in r if not c.crystals]


def _stream_with_gone(synth, tmp_path: Path, gone: list[int], name="in.stream") -> Path:
    """The synthetic stream (next to its frames) with the frames of chunks ``gone`` renamed
    to a file that does not exist."""
    head, chunks = _chunks(synth.stream_path)
    fname = f"Image filename: {synth.stream_path.stem}.h5".encode()
    for i in gone:
        assert fname in chunks[i]
        chunks[i] = chunks[i].replace(fname, b"Image filename: gone.h5")
    d = tmp_path / "run"
    d.mkdir(exist_ok=True)
    for f in synth.directory.iterdir():
        if f.suffix == ".h5" and not (d / f.name).exists():
            (d / f.name).symlink_to(f)
    src = d / name
    src.write_bytes(head + b"".join(chunks))
    return src


def _reintegrate(src: Path, out: Path, *extra: str) -> int:
    return main(["reintegrate", str(src), "-o", str(out), "-q", *extra])


# --------------------------------------------------------------------------------------------
# some frames missing
# --------------------------------------------------------------------------------------------


def test_some_frames_missing_exit_3_with_failed_file_marker_and_warning(synth, tmp_path, capsys):
    xtal = _with_crystals(synth)
    gone = xtal[1:3]
    src = _stream_with_gone(synth, tmp_path, gone)
    out = tmp_path / "out.stream"
    assert _reintegrate(src, out) == 3
    err = capsys.readouterr().err
    # -q hides the summary, never this warning
    assert f"warning: 2 of {len(xtal)} chunks with crystals were not re-integrated" in err
    assert f"{out}.failed" in err and "NOT fully re-integrated" in err
    assert "reflections:" not in err  # the summary itself stays quiet

    # the output is written (a valid stream) with the two chunks marked
    data = out.read_bytes()
    assert crystfel_problems(data) == []
    _, chunks = _chunks(out)
    for i, chunk in enumerate(chunks):
        marks = MARKER.findall(chunk)
        if i in gone:
            assert len(marks) == 1 and b"gone.h5" in marks[0] and b"not found" in marks[0]
            assert chunk.split(b"\n")[1].startswith(b"streamfilter_passed_through = ")
        else:
            assert marks == []
    # a passed-through chunk is the input's, plus only the marker line
    _, src_chunks = _chunks(src)
    for i in gone:
        assert MARKER.sub(b"", chunks[i]) == src_chunks[i]

    # the failed file: one line per chunk, documented columns
    failed_file = Path(f"{out}.failed")
    lines = failed_file.read_text().splitlines()
    assert lines[0] == FAILED_HEADER
    assert lines[3] == "#chunk\tline\tfilename\tevent\treason"
    rows = [ln.split("\t") for ln in lines if not ln.startswith("#")]
    assert [int(r[0]) for r in rows] == gone
    text = src.read_text().split("\n")
    for r in rows:
        assert len(r) == 5
        assert text[int(r[1]) - 1] == "----- Begin chunk -----"
        assert r[2] == "gone.h5" and r[3] == f"//{r[0]}" and "not found" in r[4]
    assert [f.chunk for f in read_failed(str(failed_file))] == gone

    # info: who re-integrated it, how, and how many chunks were or were not
    info = stream_info(out)
    assert info["chunks_reintegrated"] == len(xtal) - 2
    assert info["chunks_passed_through"] == 2
    assert info["reintegration_method"] == "profile"
    assert info["reintegrated_by"].startswith("streamfilter ")
    assert main(["info", str(out), "-q"]) == 0
    text_info = capsys.readouterr().out
    assert f"{len(xtal) - 2} chunks with crystals re-integrated, 2 passed through" in text_info
    # cat and merge read it
    assert main(["cat", str(out), "-o", str(tmp_path / "cat.stream"), "-q"]) == 0
    assert (tmp_path / "cat.stream").read_bytes() == data
    assert main(["merge", str(out), "-y", "4/mmm", "-o", str(tmp_path / "m.hkl"), "-q"]) == 0


def test_summary_counts_passed_through_reflections(synth, tmp_path, capsys):
    gone = _with_crystals(synth)[:1]
    src = _stream_with_gone(synth, tmp_path, gone)
    out = tmp_path / "out.stream"
    assert main(["reintegrate", str(src), "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert "in the re-integrated chunks' input" in err
    assert re.search(r"chunks passed through unchanged: 1 \(\d+ reflection rows kept", err)


@pytest.mark.parametrize(
    ("allow", "status"), [("2", 0), ("1", 3), ("0", 3), ("100%", 0), ("1%", 3)]
)
def test_allow_failed_count_or_fraction(synth, tmp_path, capsys, allow, status):
    src = _stream_with_gone(synth, tmp_path, _with_crystals(synth)[:2])
    out = tmp_path / "out.stream"
    assert _reintegrate(src, out, "--allow-failed", allow) == status
    err = capsys.readouterr().err
    assert "2 of" in err  # the warning stays, allowed or not
    assert ("within --allow-failed" in err) == (status == 0)
    assert Path(f"{out}.failed").is_file()


def test_allowance_parse():
    assert Allowance.parse("5") == Allowance(count=5)
    assert Allowance.parse("2.5%") == Allowance(count=None, percent=2.5)
    assert Allowance.parse("5%").admits(1, 20) and not Allowance.parse("4%").admits(1, 20)
    for bad in ("-1", "x", "101%", "1.5"):
        with pytest.raises(ValueError):
            Allowance.parse(bad)


def test_bad_allow_failed_is_a_usage_error(synth, tmp_path):
    with pytest.raises(SystemExit) as e:
        _reintegrate(synth.stream_path, tmp_path / "o.stream", "--allow-failed", "lots")
    assert e.value.code == 2


def test_chunks_without_crystals_are_not_failures(synth, tmp_path):
    empty = _without_crystals(synth)
    assert empty, "the synthetic stream should have chunks without crystals"
    src = _stream_with_gone(synth, tmp_path, empty)
    out = tmp_path / "out.stream"
    assert _reintegrate(src, out) == 0
    assert not Path(f"{out}.failed").exists()
    assert MARKER.findall(out.read_bytes()) == []


def test_failed_option_and_stale_file_removed(synth, tmp_path):
    src = _stream_with_gone(synth, tmp_path, _with_crystals(synth)[:1])
    out = tmp_path / "out.stream"
    listed = tmp_path / "list.tsv"
    assert _reintegrate(src, out, "--failed", str(listed)) == 3
    assert len(read_failed(str(listed))) == 1 and not Path(f"{out}.failed").exists()
    # a later complete run removes the OUT.failed an earlier one left (only one of ours)
    assert _reintegrate(src, out) == 3 and Path(f"{out}.failed").exists()
    assert _reintegrate(synth.stream_path, out) == 0
    assert not Path(f"{out}.failed").exists()
    Path(f"{out}.failed").write_text("my notes\n")
    assert _reintegrate(synth.stream_path, out) == 0
    assert Path(f"{out}.failed").read_text() == "my notes\n"


def test_reintegrating_a_marked_stream_again_drops_the_marker(synth, tmp_path):
    src = _stream_with_gone(synth, tmp_path, _with_crystals(synth)[:1])
    first = tmp_path / "first.stream"
    assert _reintegrate(src, first) == 3
    # the frame turns up again under the name the stream gives
    (src.parent / "gone.h5").symlink_to(synth.directory / f"{synth.stream_path.stem}.h5")
    second = tmp_path / "second.stream"
    assert _reintegrate(first, second, "--data-root", str(src.parent)) == 0
    assert MARKER.findall(second.read_bytes()) == []
    info = stream_info(second)
    assert info["chunks_passed_through"] == 0
    assert info["chunks_reintegrated"] == len(_with_crystals(synth))


# --------------------------------------------------------------------------------------------
# no frame at all
# --------------------------------------------------------------------------------------------


def test_nothing_reintegrated_is_an_error_without_output(synth, tmp_path, capsys):
    src = _stream_with_gone(synth, tmp_path, _with_crystals(synth))
    out = tmp_path / "out.stream"
    assert _reintegrate(src, out) == 2
    err = capsys.readouterr().err
    assert "no chunk was re-integrated" in err and "--data-root" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert _reintegrate(src, out, "--allow-failed", "100%") == 0
    assert out.is_file()


# --------------------------------------------------------------------------------------------
# the same under every engine
# --------------------------------------------------------------------------------------------


def _engine_options(engine: str) -> list[str]:
    if engine == "dask":
        pytest.importorskip(
            "dask.distributed", reason="dask.distributed not installed (the [dask] extra)")
        return ["--dask", "local", "-j", "2"]
    return {"j1": [], "j2": ["-j", "2"], "resume": ["--resume"],
            "resume-j2": ["--resume", "-j", "2"]}[engine]


@pytest.mark.parametrize("engine", ["j2", "dask", "resume", "resume-j2"])
def test_every_engine_reports_the_same_failures(synth, tmp_path, capsys, engine):
    extra = _engine_options(engine)
    gone = _with_crystals(synth)[1:3]
    src = _stream_with_gone(synth, tmp_path, gone)
    ref = tmp_path / "ref.stream"
    assert _reintegrate(src, ref) == 3
    out = tmp_path / "out.stream"
    capsys.readouterr()
    assert _reintegrate(src, out, *extra) == 3
    assert "2 of" in capsys.readouterr().err
    assert out.read_bytes() == ref.read_bytes()
    assert Path(f"{out}.failed").read_text() == Path(f"{ref}.failed").read_text()
    # and nothing re-integrated: exit 2, no output (no partial file or journal either)
    src_all = _stream_with_gone(synth, tmp_path, _with_crystals(synth), name="all.stream")
    none = tmp_path / "none.stream"
    assert _reintegrate(src_all, none, *extra) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("none", ".none"))]


def test_resumed_run_keeps_the_failures_of_its_first_part(synth, tmp_path):
    """The failed chunks before an interruption are in the journal and the final list."""
    from streamfilter.interrupt import clear_stop_requests
    from streamfilter.pipeline import run as run_module

    xtal = _with_crystals(synth)
    gone = [xtal[0], xtal[-1]]
    src = _stream_with_gone(synth, tmp_path, gone)
    ref = tmp_path / "ref.stream"
    assert _reintegrate(src, ref) == 3
    out = tmp_path / "out.stream"
    real = run_module.ReintegrateSummary.add
    seen = []

    def add_then_stop(self, result):
        real(self, result)
        seen.append(1)
        if len(seen) == len(xtal):  # past the first failed chunk, before the last
            raise KeyboardInterrupt

    run_module.ReintegrateSummary.add = add_then_stop
    try:
        assert main(["reintegrate", str(src), "-o", str(out), "-q", "--resume",
                     "--journal-every", "0"]) == 130
    finally:
        run_module.ReintegrateSummary.add = real
        clear_stop_requests()
    journal = json.loads(Path(f"{out}.sfjournal").read_text())
    assert journal["checkpoint"]["state"]["failed"][0][0] == xtal[0]
    assert _reintegrate(src, out, "--resume") == 3
    assert out.read_bytes() == ref.read_bytes()
    assert Path(f"{out}.failed").read_text() == Path(f"{ref}.failed").read_text()


# --------------------------------------------------------------------------------------------
# audit line
# --------------------------------------------------------------------------------------------


def test_audit_line_records_method_radii_geometry_and_data_roots(synth, tmp_path):
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(synth.stream_path, moved)
    geom = synth.directory / f"{synth.stream_path.stem}.geom"
    out = tmp_path / "out.stream"
    roots = [str(synth.directory), str(tmp_path / "a dir")]
    assert _reintegrate(moved / synth.stream_path.name, out, "--method", "robust",
                        "--background", "plane", "--int-radius", "3,4,6", "-g", str(geom),
                        "--data-root", roots[0], "--data-root", roots[1]) == 0  # fmt: skip
    (line,) = AUDIT.findall(out.read_bytes())
    text = line.decode()
    assert "--method=robust" in text and "--background=plane" in text
    assert "--int-radius=3,4,6" in text
    assert f"--geometry={geom.resolve()}" in text
    assert f"--data-root={roots[0]}" in text and f"--data-root='{roots[1]}'" in text
    assert crystfel_problems(out.read_bytes()) == []
    # the embedded geometry is named as such
    assert _reintegrate(synth.stream_path, tmp_path / "e.stream") == 0
    (line,) = AUDIT.findall((tmp_path / "e.stream").read_bytes())
    assert b"geometry embedded in the input" in line and b"--data-root" not in line


def test_audit_line_leaves_paths_out_near_the_header_limit(synth, tmp_path):
    out = tmp_path / "out.stream"
    roots = [str(tmp_path / ("d" * 200 + str(k))) for k in range(30)]
    args = [a for r in roots for a in ("--data-root", r)]
    assert _reintegrate(synth.stream_path, out, *args) == 0
    (line,) = AUDIT.findall(out.read_bytes())
    assert b"30 --data-root paths left out" in line
    assert crystfel_problems(out.read_bytes()) == []


# --------------------------------------------------------------------------------------------
# small option checks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", ["0", "-3", "x"])
def test_jobs_must_be_positive(synth, tmp_path, jobs):
    with pytest.raises(SystemExit) as e:
        _reintegrate(synth.stream_path, tmp_path / "o.stream", "-j", jobs)
    assert e.value.code == 2
    assert not (tmp_path / "o.stream").exists()


def test_crystfel_method_refuses_a_background(synth, tmp_path, capsys):
    out = tmp_path / "o.stream"
    assert _reintegrate(synth.stream_path, out, "--method", "crystfel", "--background",
                        "plane") == 2  # fmt: skip
    assert "--background plane is not used by --method crystfel" in capsys.readouterr().err
    assert not out.exists()


def test_crystfel_method_warns_on_streams_of_older_crystfel(synth, tmp_path, capsys):
    data = synth.stream_path.read_bytes()
    first, rest = data.split(b"\n", 1)
    second, rest = rest.split(b"\n", 1)
    src = _stream_with_gone(synth, tmp_path, [])
    src.write_bytes(first + b"\nGenerated by CrystFEL 0.9.1\n" + rest)
    assert _reintegrate(src, tmp_path / "o.stream", "--method", "crystfel") == 0
    assert "emulates CrystFEL 0.12" in capsys.readouterr().err
    assert _reintegrate(src, tmp_path / "p.stream") == 0  # not with the other methods
    assert "emulates" not in capsys.readouterr().err


def test_table_leaves_missing_values_empty(synth, tmp_path):
    table = tmp_path / "t.csv"
    assert _reintegrate(synth.stream_path, tmp_path / "o.stream", "--table", str(table)) == 0
    assert "nan" not in table.read_text()
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert any(r["I_old"] == "" for r in rows)  # predicted, not in the input's rows
    assert all(r["I_old"] == "" or float(r["I_old"]) == float(r["I_old"]) for r in rows)
