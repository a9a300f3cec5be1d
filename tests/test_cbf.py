"""CBF frames (PILATUS mini-CBF, byte-offset compressed) against CrystFEL 0.12.0.

``../shared/data/ref-detectors/pilatus-cbf`` holds 18 frames as ``.cbf`` and two streams
indexamajig wrote from them (``rings`` with radii 3,4,5 and ``rings-grad`` with 2,3,5).
``reintegrate --method crystfel`` of a copy whose ``I`` column is zeroed (a chunk passed
through unchanged cannot match) must give CrystFEL's rows, the same set of rows and the same
counters; gzip-compressed copies of the frames give the same bytes.  The synthetic tests
below need no shared data.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from streamfilter.cli import main
from streamfilter.frames import FrameReadError, FrameSource
from streamfilter.geometry import parse_geometry
from tests.test_conformance_detectors import rows_and_counters, zero_intensities

REPO = Path(__file__).resolve().parents[1]
PILATUS = REPO.parent / "shared" / "data" / "ref-detectors" / "pilatus-cbf"
PILATUS_MISSING = (
    "../shared/data/ref-detectors/pilatus-cbf not present (CBF frames and CrystFEL 0.12.0 "
    "streams, not shipped)"
)
@pytest.fixture(scope="module")
def pilatus() -> Path:
    if not (PILATUS / "pilatus-cbf_r345.stream").is_file():
        pytest.skip(PILATUS_MISSING)
    return PILATUS


def reintegrate(stream: Path, out: Path, *options: str) -> None:
    assert main(["reintegrate", str(stream), "-o", str(out), "-q", "--method", "crystfel",
                 *options]) == 0  # fmt: skip


def renamed_frames(path: Path, rename) -> None:
    """Rewrite each ``Image filename`` of a stream through ``rename``."""
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(
        "Image filename: " + rename(line[16:].strip()) + "\n"
        if line.startswith("Image filename: ") else line for line in lines
    ))  # fmt: skip


def test_cbf_gz_and_moved_frames_give_the_same_rows(pilatus, tmp_path):
    ref = pilatus / "pilatus-cbf_r345.stream"
    plain_dir = tmp_path / "moved" / "cbf"
    gz_dir = tmp_path / "gz" / "cbf"
    plain_dir.mkdir(parents=True)
    gz_dir.mkdir(parents=True)
    for f in sorted((pilatus / "cbf").glob("*.cbf")):
        shutil.copy(f, plain_dir / f.name)
        with open(f, "rb") as src, gzip.open(gz_dir / (f.name + ".gz"), "wb") as dst:
            shutil.copyfileobj(src, dst)
    zeroed = tmp_path / "zeroed.stream"
    zero_intensities(ref, zeroed)
    direct = tmp_path / "direct.stream"
    reintegrate(zeroed, direct, "--data-root", str(pilatus))
    moved = tmp_path / "moved.stream"
    reintegrate(zeroed, moved, "--data-root", str(tmp_path / "moved"))
    assert rows_and_counters(moved) == rows_and_counters(direct)
    zeroed_gz = tmp_path / "zeroed_gz.stream"
    zero_intensities(ref, zeroed_gz)
    renamed_frames(zeroed_gz, lambda name: name + ".gz")
    compressed = tmp_path / "compressed.stream"
    reintegrate(zeroed_gz, compressed, "--data-root", f"cbf={gz_dir}")
    unzipped = [{(k[0].removesuffix(".gz"), *k[1:]): v for k, v in d.items()}
                for d in rows_and_counters(compressed)]  # fmt: skip
    assert unzipped == list(rows_and_counters(direct))


# -- synthetic CBF files (no shared data needed) ---------------------------------------------

GEOM = """\
photon_energy = 9000
clen = 0.1
adu_per_photon = 1
res = 5814
flag_lessthan = 0
flag_morethan = 1000

a/min_fs = 0
a/max_fs = 39
a/min_ss = 0
a/max_ss = 9
a/corner_x = -20
a/corner_y = -10
a/fs = x
a/ss = y

b/min_fs = 0
b/max_fs = 39
b/min_ss = 10
b/max_ss = 29
b/corner_x = -20
b/corner_y = 12
b/fs = x
b/ss = y
"""


def write_cbf(path: Path, data: np.ndarray) -> None:
    import fabio.cbfimage

    fabio.cbfimage.CbfImage(data=data.astype(np.int32)).write(str(path))


@pytest.fixture
def synthetic(tmp_path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(1515)
    data = rng.poisson(50.0, size=(30, 40)).astype(np.int32)
    data[5, 7] = -1
    data[20, 3] = -2
    data[12, 30] = 5000
    write_cbf(tmp_path / "frame.cbf", data)
    return tmp_path, data


def test_synthetic_cbf_panels_and_flags(synthetic):
    """Panels are the geometry's fs/ss ranges of the one array; flag_lessthan/morethan
    mark exactly the pixels CrystFEL marks (strict comparisons)."""
    tmp, data = synthetic
    det = parse_geometry(GEOM)
    frame = FrameSource(det, [tmp]).load("frame.cbf", "//")
    np.testing.assert_array_equal(frame.data["a"], data[:10].astype(np.float32))
    np.testing.assert_array_equal(frame.data["b"], data[10:].astype(np.float32))
    bad = np.vstack([frame.bad["a"], frame.bad["b"]])
    np.testing.assert_array_equal(bad, (data < 0) | (data > 1000))
    np.testing.assert_array_equal(frame.flat_data, data.ravel().astype(np.float32))
    assert frame.header == {}


def test_cbf_gz_reads_the_same_pixels(synthetic):
    tmp, data = synthetic
    with open(tmp / "frame.cbf", "rb") as src, gzip.open(tmp / "frame.cbf.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    src = FrameSource(parse_geometry(GEOM), [tmp])
    np.testing.assert_array_equal(src.load("frame.cbf.gz", "//").data["b"], data[10:])


def test_cbf_needs_header_values_as_numbers(synthetic):
    tmp, _ = synthetic
    det = parse_geometry(GEOM.replace("clen = 0.1", "clen = /LCLS/detectorPosition"))
    with pytest.raises(FrameReadError, match=r"CBF files carry no header values.*clen"):
        FrameSource(det, [tmp]).load("frame.cbf", "//")


def test_truncated_cbf_is_refused(synthetic):
    tmp, _ = synthetic
    raw = (tmp / "frame.cbf").read_bytes()
    (tmp / "cut.cbf").write_bytes(raw[: len(raw) - 600])
    with pytest.raises(FrameReadError, match=r"cut\.cbf.*cannot decode the CBF image"):
        FrameSource(parse_geometry(GEOM), [tmp]).load("cut.cbf", "//")


def test_panel_outside_the_cbf_image_is_refused(synthetic):
    tmp, _ = synthetic
    det = parse_geometry(GEOM.replace("b/max_ss = 29", "b/max_ss = 30"))
    with pytest.raises(FrameReadError, match=r"panel b .* outside the CBF image of 40 \(fs\)"):
        FrameSource(det, [tmp]).load("frame.cbf", "//")


@pytest.mark.parametrize(("name", "content", "kind"), [
    ("frame.tif", b"II*\x00" + bytes(60), r"TIFF \(little-endian\) \(extension \.tif"),
    ("frame.edf", b"{\nHeaderID = EH:000001\n", r"ESRF EDF .*extension \.edf"),
    ("frame.img", b"hello", r"an unknown format \(extension \.img"),
])  # fmt: skip
def test_unsupported_format_is_named(tmp_path, name, content, kind):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(FrameReadError, match="format not supported: " + kind):
        FrameSource(parse_geometry(GEOM), [tmp_path]).load(name, "//")
