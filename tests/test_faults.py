"""Faulty frames and limits: each fault gives its documented behaviour, never a traceback.

Frames (``reintegrate``): a missing file, a truncated HDF5 file, a dataset of the wrong shape,
an event out of range, an unreadable file, a directory in place of the file, a missing
dataset, a geometry that does not match the data.  Each chunk whose frame cannot be read is
passed through byte for byte and counted (every other chunk is rewritten exactly as with good
frames); ``--strict`` makes the first one an error (exit status 2) naming the stream, the
line and the chunk, and leaves no output.  NaN/inf pixels are bad pixels, as in CrystFEL: a
reflection with one in its peak disc is not written, and no NaN reaches the output.

Limits: an output path equal to the input (also through a symlink or a hard link, for
``reintegrate``, ``--table``, ``cat`` and ``split``), a full disk (a child process with
``RLIMIT_FSIZE``: a real EFBIG write error), a missing or unwritable output directory: a
clear error naming the file, exit status 2, the input untouched and nothing left behind.

The data are simulated (:mod:`streamfilter.synth`, fixed seed), so these tests run without
``../shared``.  Tests run as root here: an "unreadable" frame is then ``/proc/self/mem``
(the kernel refuses to read it even to root: EIO), and an unwritable directory is ``/sys``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from streamfilter import reintegrate
from streamfilter.cli import main
from streamfilter.errors import StreamfilterError
from streamfilter.stream.cat import cat_streams
from streamfilter.stream.split import split_stream
from streamfilter.synth import DATA_PATH, MASK_PATH, SynthConfig, generate, geometry_text

from .test_fuzz import split_chunks

CONFIG = SynthConfig(seed=11, n_frames=6, panel_width=96, panel_height=96)
PROVENANCE = re.compile(rb"(?m)^streamfilter \S+ reintegrate [^\n]*\n")
# the line that marks a chunk passed through unchanged (after its begin marker)
MARKER = re.compile(rb"(?m)^streamfilter_passed_through = [^\n]*\n")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """The simulated data set and the output of a run on good frames."""
    d = tmp_path_factory.mktemp("synth")
    ds = generate(d, CONFIG)
    good = d / "good.stream"
    reintegrate(str(ds.stream_path), str(good))
    return ds, good.read_bytes()


def chunks_of(data: bytes) -> list[bytes]:
    return split_chunks(data)[1]


def copy_frames(
    src: Path,
    dst: Path,
    *,
    frames: slice = slice(None),
    fs_stop: int | None = None,
    dtype=None,
    data_path: str = DATA_PATH,
    poison=(),
) -> None:
    """Write a modified copy of the simulated HDF5 file."""
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        data = f[DATA_PATH][frames, :, :fs_stop]
        if dtype is not None:
            data = data.astype(dtype)
        for frame, ss, fs, value in poison:
            data[frame, ss, fs] = value
        g[data_path] = data
        g[MASK_PATH] = f[MASK_PATH][:, :fs_stop]


# --------------------------------------------------------------------------------------------
# Faulty frames
# --------------------------------------------------------------------------------------------


def _missing(ds, d):
    pass


def _truncated(ds, d):
    b = ds.h5_path.read_bytes()
    (d / ds.h5_path.name).write_bytes(b[: len(b) // 2])


def _wrong_shape(ds, d):
    copy_frames(ds.h5_path, d / ds.h5_path.name, fs_stop=80)


def _event_out_of_range(ds, d):
    copy_frames(ds.h5_path, d / ds.h5_path.name, frames=slice(0, 4))


def _unreadable(ds, d):
    target = d / ds.h5_path.name
    if os.geteuid() != 0:
        shutil.copy(ds.h5_path, target)
        target.chmod(0)
    else:  # root reads anything chmod forbids; the kernel refuses this one even to root
        target.symlink_to("/proc/self/mem")


def _directory(ds, d):
    (d / ds.h5_path.name).mkdir()


def _no_dataset(ds, d):
    copy_frames(ds.h5_path, d / ds.h5_path.name, data_path="/entry/data/raw")


# fault -> (preparation, chunks whose frame fails (None: every chunk with crystals), reason)
FRAME_FAULTS = {
    "missing file": (_missing, None, r"not found; tried"),
    "truncated HDF5": (
        _truncated,
        None,
        r"cannot open .* \(unreadable or truncated\).*"
        r"truncated file",
    ),
    "wrong dataset shape": (
        _wrong_shape,
        None,
        r"the geometry needs max_fs 95 .* has shape "
        r"\(6, 192, 80\)",
    ),
    "event out of range": (_event_out_of_range, {4, 5}, r"event index [45] is out of range"),
    "unreadable file": (
        _unreadable,
        None,
        r"cannot open .*(Permission denied|errno = 5|"
        r"Input/output error)",
    ),
    "directory in place of the file": (_directory, None, r"not found; tried"),
    "missing dataset": (
        _no_dataset,
        None,
        r"image dataset '/entry/data/data' in .* is "
        r"missing; '/entry/data' holds: mask, raw",
    ),
}


def check_passed_through(
    src: Path, out: Path, summary, good: bytes, failing: set[int], reason: str
) -> None:
    """Failing chunks copied verbatim (plus the marker line) and counted, every other chunk
    as with good frames."""
    data = src.read_bytes()
    new, reference = chunks_of(out.read_bytes()), chunks_of(good)
    old = chunks_of(data)
    assert len(new) == len(old) == len(reference)
    assert PROVENANCE.sub(b"", split_chunks(out.read_bytes())[0], count=1) == split_chunks(data)[0]
    for i, (a, b, ref) in enumerate(zip(old, new, reference)):
        if i in failing:
            assert len(MARKER.findall(b)) == 1 and MARKER.sub(b"", b) == a, f"chunk {i}"
        else:
            assert b == ref, f"chunk {i}"
    c = summary.counters
    assert c["passed_through"] == len(failing) == len(summary.passed_through)
    assert c["chunks"] == len(old)
    assert c["frames_read"] + c["passed_through"] + c["no_crystals"] == c["chunks"]
    for i, why in zip(sorted(failing), summary.passed_through):
        assert why.startswith(f"{src}, line "), why
        assert f", chunk {i}: " in why
        assert re.search(reason, why, re.S), why


def with_crystals(data: bytes) -> set[int]:
    return {i for i, c in enumerate(chunks_of(data)) if b"--- Begin crystal" in c}


@pytest.mark.parametrize("fault", FRAME_FAULTS)
def test_faulty_frames_pass_chunks_through_or_fail_under_strict(fault, synth, tmp_path, capsys):
    ds, good = synth
    prepare, failing, reason = FRAME_FAULTS[fault]
    src = tmp_path / ds.stream_path.name
    shutil.copy(ds.stream_path, src)
    prepare(ds, tmp_path)
    failing = with_crystals(src.read_bytes()) if failing is None else failing
    assert failing
    before = src.read_bytes()
    out = tmp_path / "out.stream"
    summary = reintegrate(str(src), str(out), allow_failed="100%")  # some faults fail all
    check_passed_through(src, out, summary, good, failing, reason)
    if set(failing) == with_crystals(before):  # without --allow-failed: an error, no output
        out.unlink()
        Path(f"{out}.failed").unlink()
        with pytest.raises(StreamfilterError, match="no chunk was re-integrated"):
            reintegrate(str(src), str(out))
        assert not out.exists()
    Path(f"{out}.failed").unlink(missing_ok=True)
    out.unlink(missing_ok=True)
    # --strict: the first failing chunk is an error naming stream, line and chunk
    listing = sorted(os.listdir(tmp_path))
    capsys.readouterr()
    assert main(["reintegrate", str(src), "-o", str(out), "--strict", "-q"]) == 2
    err = capsys.readouterr().err
    first = min(failing)
    line = src.read_bytes()[: src.read_bytes().index(chunks_of(before)[first])].count(b"\n") + 1
    assert f"error: {src}, line {line}, chunk {first}: " in err, err
    assert re.search(reason, err, re.S), err
    assert sorted(os.listdir(tmp_path)) == listing, "no output, no temporary file"
    assert src.read_bytes() == before


@pytest.mark.parametrize("kind", ["panels larger than the data", "another data path"])
def test_geometry_that_does_not_match_the_data(kind, synth, tmp_path, capsys):
    ds, good = synth
    src = tmp_path / ds.stream_path.name
    shutil.copy(ds.stream_path, src)
    (tmp_path / ds.h5_path.name).symlink_to(ds.h5_path)
    geom = geometry_text(CONFIG)
    if kind == "panels larger than the data":
        geom = geom.replace("p0/max_fs = 95", "p0/max_fs = 119").replace(
            "p1/max_fs = 95", "p1/max_fs = 119"
        )
        reason = (
            r"the geometry needs max_fs 119 on axis 2 \(fs\) but '/entry/data/data' "
            r"has shape \(6, 192, 96\)"
        )
    else:
        geom = geom.replace("data = /entry/data/data", "data = /entry/data/frames")
        reason = (
            r"image dataset '/entry/data/frames' in .* is missing; '/entry/data' "
            r"holds: data, mask"
        )
    assert geom != geometry_text(CONFIG)
    g = tmp_path / "other.geom"
    g.write_text(geom)
    out = tmp_path / "out.stream"
    summary = reintegrate(str(src), str(out), geometry=str(g), allow_failed="100%")
    failing = with_crystals(src.read_bytes())
    assert summary.counters["passed_through"] == len(failing) > 0
    assert chunks_of(MARKER.sub(b"", out.read_bytes())) == chunks_of(src.read_bytes())
    assert all(re.search(reason, why) for why in summary.passed_through)
    out.unlink()
    Path(f"{out}.failed").unlink()
    capsys.readouterr()
    assert main(["reintegrate", str(src), "-o", str(out), "-g", str(g), "--strict", "-q"]) == 2
    assert re.search(reason, capsys.readouterr().err)
    assert not out.exists()


def test_nan_and_inf_pixels_are_bad_pixels(synth, tmp_path):
    """A non-finite pixel in a float dataset is bad (CrystFEL's create_badmap): a reflection
    with one in its peak disc is not written; with the local rings of crystfel mode,
    reflections far from it are unchanged (profile fitting also learns from the frame's other
    spots, so there only the first two promises are checked)."""
    ds, _ = synth
    src = tmp_path / ds.stream_path.name
    shutil.copy(ds.stream_path, src)
    reintegrate(str(ds.stream_path), str(tmp_path / "good.stream"), method="crystfel")
    good = (tmp_path / "good.stream").read_bytes()
    # the first two written reflections of the first crystal, in data-array coordinates
    chunk0 = next(c for c in chunks_of(good) if b"--- Begin crystal" in c)
    frame = int(re.search(rb"Event: //(\d+)", chunk0).group(1))
    rows = re.search(rb"fs/px  ss/px panel\n(.*?)End of reflections", chunk0, re.S).group(1)
    rows = [r.split() for r in rows.splitlines()]
    targets = [(int(float(r[8])), int(float(r[7]))) for r in rows[:2]]  # (ss, fs)
    poison = [(frame, ss, fs, v) for (ss, fs), v in zip(targets, (np.nan, np.inf))]
    copy_frames(ds.h5_path, tmp_path / ds.h5_path.name, dtype=np.float32, poison=poison)
    out = tmp_path / "out.stream"
    for method in ("profile", "crystfel"):
        summary = reintegrate(str(src), str(out), method=method)
        assert summary.counters["passed_through"] == 0
        new = out.read_bytes()
        written = re.findall(rb"fs/px  ss/px panel\n(.*?)End of reflections", new, re.S)
        assert not re.search(rb"(?i)\bnan\b|\binf\b", b"".join(written)), method
        first = re.search(rb"fs/px  ss/px panel\n(.*?)End of reflections",
                          chunks_of(new)[chunks_of(good).index(chunk0)], re.S).group(1)
        got = {tuple(r.split()[:3]) for r in first.splitlines()}
        assert not {tuple(r[:3]) for r in rows[:2]} & got, method
    assert not re.search(
        rb"(?i)\bnan\b|\binf\b",
        b"".join(re.findall(rb"fs/px  ss/px panel\n(.*?)End of reflections", new, re.S)),
    )
    new_chunk = chunks_of(new)[chunks_of(good).index(chunk0)]
    new_rows = (
        re.search(rb"fs/px  ss/px panel\n(.*?)End of reflections", new_chunk, re.S)
        .group(1)
        .splitlines()
    )
    old_rows = {tuple(r[:3]): r for r in rows}
    got = {tuple(r.split()[:3]): r.split() for r in new_rows}
    for r in rows[:2]:
        assert tuple(r[:3]) not in got, "a reflection on a NaN/inf pixel was written"
    far = 0
    for hkl, r in old_rows.items():
        ss, fs = float(r[8]), float(r[7])
        if min(np.hypot(ss - t[0], fs - t[1]) for t in targets) > 10:
            assert got[hkl] == r
            far += 1
    assert far > 10
    # every other chunk is exactly as with the integer frames
    assert [c for c in chunks_of(new) if c != new_chunk] == [
        c for c in chunks_of(good) if c != chunk0
    ]


# --------------------------------------------------------------------------------------------
# Limits: output == input, full disk, unwritable output directory
# --------------------------------------------------------------------------------------------


def _cli(capsys, *args: str) -> tuple[int, str]:
    """``streamfilter ARGS`` in this process: exit status and standard error."""
    capsys.readouterr()
    status = main(list(args))
    return status, capsys.readouterr().err


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link"])
def test_output_equal_to_input_is_refused(how, synth, tmp_path, capsys):
    ds, _ = synth
    src = tmp_path / "in.stream"
    shutil.copy(ds.stream_path, src)
    (tmp_path / ds.h5_path.name).symlink_to(ds.h5_path)
    data = src.read_bytes()
    out = {
        "same path": src,
        "symlink": tmp_path / "link.stream",
        "hard link": tmp_path / "hard.stream",
    }[how]
    if how == "symlink":
        out.symlink_to(src)
    elif how == "hard link":
        os.link(src, out)
    listing = sorted(os.listdir(tmp_path))
    for args in (
        ["reintegrate", str(src), "-o", str(out)],
        ["reintegrate", str(src), "-o", str(tmp_path / "x.stream"), "--table", str(out)],
        ["reintegrate", str(src), "-o", str(out), "--resume"],
        ["cat", str(src), "-o", str(out)],
    ):
        status, err = _cli(capsys, *args, "-q")
        assert status == 2, (args, err)
        assert "refusing to overwrite" in err and str(out) in err and "Traceback" not in err
    # a shard named like the input
    shutil.copy(src, tmp_path / "part-000.stream")
    status, err = _cli(
        capsys, "split", str(tmp_path / "part-000.stream"), "-n", "2", "-o", str(tmp_path / "part")
    )
    assert status == 2 and "would overwrite the input" in err
    (tmp_path / "part-000.stream").unlink()
    assert sorted(os.listdir(tmp_path)) == listing
    assert src.read_bytes() == data


def _with_file_size_limit(limit: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    # CPython ignores SIGXFSZ already; make sure, so the write fails with EFBIG instead
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@pytest.mark.parametrize("command", ["reintegrate", "reintegrate --resume", "cat", "split"])
def test_full_disk_gives_a_clear_error_and_removes_partial_output(command, synth, tmp_path):
    ds, _ = synth
    src = tmp_path / "in.stream"
    shutil.copy(ds.stream_path, src)
    (tmp_path / ds.h5_path.name).symlink_to(ds.h5_path)
    data = src.read_bytes()
    out = tmp_path / "out.stream"
    argv = {
        "reintegrate": ["reintegrate", str(src), "-o", str(out), "-q"],
        "reintegrate --resume": [
            "reintegrate",
            str(src),
            "-o",
            str(out),
            "-q",
            "--resume",
            "--journal-every",
            "0",
        ],
        "cat": ["cat", str(src), "-o", str(out), "-q"],
        "split": ["split", str(src), "-n", "3", "-o", str(tmp_path / "part"), "--no-cache"],
    }[command]
    listing = sorted(os.listdir(tmp_path))
    limit = len(data) // 4  # the header fits, a third of the stream does not
    proc = subprocess.run(
        [sys.executable, "-m", "streamfilter.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: _with_file_size_limit(limit),
    )
    assert proc.returncode == 2, proc.stderr
    assert "File too large" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "cannot write the output" in proc.stderr
    assert sorted(os.listdir(tmp_path)) == listing, "partial output left behind"
    assert src.read_bytes() == data


def _unwritable_dir(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        d = tmp_path / "readonly"
        d.mkdir()
        d.chmod(0o500)
        return d
    try:  # root writes anywhere chmod forbids; sysfs refuses new files even to root
        fd, name = tempfile.mkstemp(dir="/sys")
    except OSError:
        return Path("/sys")
    os.close(fd)
    os.unlink(name)
    pytest.skip("running as root, and no directory refuses root's writes here (not even /sys)")


@pytest.mark.parametrize("where", ["missing directory", "a file as directory", "unwritable"])
def test_unusable_output_directory(where, synth, tmp_path, capsys):
    ds, _ = synth
    src = tmp_path / "in.stream"
    shutil.copy(ds.stream_path, src)
    (tmp_path / ds.h5_path.name).symlink_to(ds.h5_path)
    (tmp_path / "afile").write_text("x")
    directory = {
        "missing directory": tmp_path / "no" / "such",
        "a file as directory": tmp_path / "afile",
        "unwritable": None,
    }[where]
    if directory is None:
        directory = _unwritable_dir(tmp_path)
    out = directory / "out.stream"
    listing = sorted(os.listdir(tmp_path))
    for args in (
        ["reintegrate", str(src), "-o", str(out)],
        ["reintegrate", str(src), "-o", str(out), "--resume"],
        [
            "reintegrate",
            str(src),
            "-o",
            str(tmp_path / "o.stream"),
            "--table",
            str(directory / "t.csv"),
        ],
        ["cat", str(src), "-o", str(out)],
        ["split", str(src), "-n", "2", "-o", str(directory / "part")],
    ):
        status, err = _cli(capsys, *args)
        assert status == 2, (args, err)
        assert re.search(r"does not exist|not writable|cannot create a file", err), err
        assert str(directory) in err
    assert sorted(os.listdir(tmp_path)) == listing


def test_library_errors_are_streamfilter_errors(synth, tmp_path):
    """The same refusals from the library API: StreamfilterError, never OSError."""
    ds, _ = synth
    with pytest.raises(StreamfilterError, match="refusing to overwrite"):
        reintegrate(str(ds.stream_path), str(ds.stream_path))
    with pytest.raises(StreamfilterError, match="does not exist"):
        cat_streams([ds.stream_path], tmp_path / "no" / "out.stream")
    with pytest.raises(StreamfilterError, match="does not exist"):
        split_stream(str(ds.stream_path), 2, str(tmp_path / "no" / "part"))
