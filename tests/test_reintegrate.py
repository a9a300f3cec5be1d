"""`streamfilter reintegrate` end to end: the rewritten stream, its readers, failures, table."""

from __future__ import annotations

import csv
import operator
import re
import shutil
from collections import Counter

import numpy as np
import pytest

from streamfilter import reintegrate
from streamfilter.cli import main
from streamfilter.errors import StreamfilterError
from streamfilter.pipeline.step import TABLE_COLUMNS
from streamfilter.stream import read_stream
from streamfilter.stream.validate import crystfel_problems
from streamfilter.synth import SynthConfig, generate

PROVENANCE = re.compile(rb"streamfilter \S+ reintegrate [^\n]*\n")
MARKER = re.compile(rb"(?m)^streamfilter_passed_through = [^\n]*\n")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    return generate(d, SynthConfig(seed=5, n_frames=8))


def rows_of(path) -> list[list[str]]:
    text = open(path).read()
    tables = re.findall(r"Reflections measured after indexing\n[^\n]*\n(.*?)End of reflections",
                        text, re.S)
    return [t.splitlines() for t in tables]


def test_crystfel_mode_reproduces_a_stream_made_the_same_way(synth, tmp_path):
    out = tmp_path / "out.stream"
    s = reintegrate(str(synth.stream_path), str(out), method="crystfel")
    original = synth.stream_path.read_bytes()
    new = out.read_bytes()
    assert PROVENANCE.sub(b"", new, count=1) == original
    assert s.counters["chunks"] == 8
    assert s.counters["reflections_out"] == s.counters["reflections_in"] > 0
    assert crystfel_problems(new, str(out)) == []


def test_provenance_line_sits_in_the_audit_header(synth, tmp_path):
    out = tmp_path / "out.stream"
    reintegrate(str(synth.stream_path), str(out), int_radius=(2, 3, 5))
    lines = out.read_bytes().split(b"\n")
    assert lines[0] == b"CrystFEL stream format 2.3"
    assert lines[2].startswith(b"streamfilter ") and b"--int-radius=2,3,5" in lines[2]
    header = out.read_bytes().split(b"----- Begin geometry file -----")[0]
    assert len(header) < 4000


def test_other_radii_change_only_rows_and_counters(synth, tmp_path):
    out = tmp_path / "out.stream"
    reintegrate(str(synth.stream_path), str(out), int_radius=(2, 3, 5))
    strip = re.compile(rb"(num_reflections|num_saturated_reflections|"
                       rb"num_implausible_reflections) = \d+\n|Reflections measured after "
                       rb"indexing\n.*?End of reflections\n", re.S)
    new = PROVENANCE.sub(b"", out.read_bytes(), count=1)
    assert strip.sub(b"", new) == strip.sub(b"", synth.stream_path.read_bytes())
    assert rows_of(out) != rows_of(synth.stream_path)
    with read_stream(out) as r:
        for chunk in r:
            for x in chunk.crystals:
                assert x.num_reflections == len(x.reflections)


@pytest.mark.parametrize("jobs", [1, 2])
def test_old_format_input_is_upgraded_on_the_way(jobs, synth, tmp_path):
    src = synth.stream_path.read_bytes()
    old = src.replace(b"CrystFEL stream format 2.3", b"CrystFEL stream format 2.2", 1)
    old = re.sub(rb"(?m)^( +-?\d+ +-?\d+ +-?\d+(?: +\S+){6}) \S+$", rb"\1", old)
    old = re.sub(rb"(?m)^( *[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+)   \S+$", rb"\1", old)
    assert b" p0\n" not in old
    p = tmp_path / "old.stream"
    p.write_bytes(old)
    out = tmp_path / "new.stream"
    reintegrate(str(p), str(out), data_roots=[str(synth.directory)], method="crystfel",
                jobs=jobs, batch_size=2)
    assert PROVENANCE.sub(b"", out.read_bytes(), count=1) == src


def test_missing_frames_pass_chunks_through_and_strict_fails(synth, tmp_path):
    d = tmp_path / "moved"
    d.mkdir()
    shutil.copy(synth.stream_path, d)  # the frames stay behind
    src = d / synth.stream_path.name
    out = tmp_path / "out.stream"
    with pytest.raises(StreamfilterError, match="no chunk was re-integrated"):
        reintegrate(str(src), str(out))  # nothing re-integrated: an error, no output
    assert not out.exists() and not (tmp_path / "out.stream.failed").exists()
    s = reintegrate(str(src), str(out), allow_failed="100%")  # unless the user accepts it
    assert s.counters["passed_through"] == s.counters["chunks"] - s.counters["no_crystals"] > 0
    assert s.counters["frames_read"] == 0
    unmarked = MARKER.sub(b"", PROVENANCE.sub(b"", out.read_bytes(), count=1))
    assert unmarked == src.read_bytes()
    assert len(MARKER.findall(out.read_bytes())) == s.counters["passed_through"]
    assert all("searched" in p or "not found" in p.lower() for p in s.passed_through)
    assert main(["reintegrate", str(src), "-o", str(tmp_path / "x.stream"), "--strict",
                 "-q"]) == 2
    assert not (tmp_path / "x.stream").exists()
    # --data-root finds them again
    s = reintegrate(str(src), str(out), data_roots=[str(synth.directory)])
    assert s.counters["passed_through"] == 0


def test_table_lists_every_predicted_reflection(synth, tmp_path):
    out = tmp_path / "out.stream"
    table = tmp_path / "t.csv"
    s = reintegrate(str(synth.stream_path), str(out), table=str(table), method="crystfel")
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0].keys()) == TABLE_COLUMNS
    written = [r for r in rows if r["status"] == "0"]
    assert len(written) == s.counters["reflections_out"]
    assert len(rows) == sum(v for k, v in s.counters.items() if k.startswith("status_"))
    with read_stream(out) as r:
        first = next(c for c in r if c.crystals)
        t = first.crystals[0].reflections
    mine = [r for r in written if r["chunk"] == str(first.index) and r["crystal"] == "0"]
    assert [int(r["h"]) for r in mine] == t.h.tolist()
    assert np.allclose([float(r["I"]) for r in mine], t.I, atol=0.006)
    assert np.allclose([float(r["I_old"]) for r in mine], t.I, atol=0.006)


def _table(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_table_gives_resolution_and_estimator(synth, tmp_path):
    """--table's d_A is the resolution of the row (as from the crystal's printed cell) and
    its estimator says what gave I: rings for crystfel; for profile, "sum" rows carry
    exactly robust's sum and "profile" rows a fit."""
    from streamfilter.crystal import Cell

    rows = {}
    for method in ("crystfel", "robust", "profile"):
        reintegrate(str(synth.stream_path), str(tmp_path / f"{method}.stream"), method=method,
                    table=str(tmp_path / f"{method}.csv"))  # fmt: skip
        rows[method] = _table(tmp_path / f"{method}.csv")
    written = [r for r in rows["crystfel"] if r["status"] == "0"]
    assert {r["estimator"] for r in written} == {"rings"}
    assert all(r["estimator"] == "" for r in rows["crystfel"] if r["I"] == "")
    with read_stream(synth.stream_path) as reader:
        cells = {(c.index, i): x.cell for c in reader for i, x in enumerate(c.crystals)}
    for r in written:
        a, b, c, al, be, ga = cells[int(r["chunk"]), int(r["crystal"])]
        cell = Cell(a * 10, b * 10, c * 10, al, be, ga)  # nm -> Angstrom
        d = 10.0 / float(cell.one_over_d(int(r["h"]), int(r["k"]), int(r["l"])))
        assert float(r["d_A"]) == pytest.approx(d, abs=0.0015)  # the cell prints 4 decimals
    robust = {(r["chunk"], r["crystal"], r["h"], r["k"], r["l"]): r["I"]
              for r in rows["robust"] if r["status"] == "0"}  # fmt: skip
    profile = [r for r in rows["profile"] if r["status"] == "0"]
    kinds = Counter(r["estimator"] for r in profile)
    assert set(kinds) == {"profile", "sum"} and kinds["profile"] > kinds["sum"] > 0
    key = operator.itemgetter("chunk", "crystal", "h", "k", "l")
    assert all(r["I"] == robust[key(r)] for r in profile if r["estimator"] == "sum")
    fitted = [r for r in profile if r["estimator"] == "profile"]
    assert sum(r["I"] != robust[key(r)] for r in fitted) > 0.95 * len(fitted)


def test_ref_small_through_the_cli(ref_small, tmp_path):
    out = tmp_path / "r345.stream"
    assert main(["reintegrate", str(ref_small / "lyso_dev_r345.stream"), "-o", str(out),
                 "--method", "crystfel", "-q"]) == 0
    ours, theirs = rows_of(out), rows_of(ref_small / "lyso_dev_r345.stream")
    assert [len(t) for t in ours] == [len(t) for t in theirs]
    flat_ours = [r for t in ours for r in t]
    flat_theirs = [r for t in theirs for r in t]
    same = sum(a == b for a, b in zip(flat_ours, flat_theirs))
    assert same >= 0.995 * len(flat_theirs)
    assert crystfel_problems(out.read_bytes(), str(out)) == []
    assert crystfel_problems((ref_small / "lyso_dev_r345.stream").read_bytes()) == []


def test_strict_validator_catches_what_crystfel_rejects(synth):
    good = synth.stream_path.read_bytes()
    assert crystfel_problems(good) == []
    cases = {
        b"num_reflections": (lambda d: re.sub(rb"num_reflections = (\d+)",
                                              lambda m: b"num_reflections = %d"
                                              % (int(m.group(1)) + 1), d, count=1)),
        b"10 fields": lambda d: re.sub(rb"(?m)^( +-?\d+ +-?\d+ +-?\d+(?: +\S+){6}) p\d$",
                                      rb"\1", d, count=1),
        b"NaN in the peak": lambda d: re.sub(rb"(?m)^( +-?\d+ +-?\d+ +-?\d+ +\S+ +\S+ +)\S+",
                                            rb"\1nan", d, count=1),
        b"End crystal": lambda d: d.replace(b"--- End crystal\n", b"--- End crystal \n", 1),
        b"CR in the header": lambda d: d.replace(b"\n", b"\r\n", 3),
        b"photon_energy_eV": lambda d: re.sub(rb"photon_energy_eV = \S+\n", b"", d, count=1),
    }
    for what, mutate in cases.items():
        problems = crystfel_problems(mutate(good))
        assert problems and what.decode() in " ".join(problems), what
