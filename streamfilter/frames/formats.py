"""Which file format an image file is, and reading CBF frames (through ``fabio``).

CrystFEL 0.12 reads HDF5, CBF and gzip-compressed CBF (``libcrystfel/src/image.c``,
``file_type``): ``.cbf`` and ``.cbf.gz`` by the name, anything else by the content (the HDF5
signature, or a first line ``###CBF: VERSION``, plain or inside gzip).  We detect the same way,
by content first, so a CBF file with another name is still read as CBF.

A CBF holds one 2-D array, rows = slow scan (ss), columns = fast scan (fs).  Like CrystFEL we
take each panel at ``min_fs..max_fs`` x ``min_ss..max_ss`` of it and ignore ``data`` and
``dim``; the values become float32 (as CrystFEL's ``convert_type``).  No header values are
taken from a CBF: CrystFEL reads none (``image_cbf_read_header_to_cache`` is not implemented),
so ``clen``, ``photon_energy`` etc. must be numbers in the geometry.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..geometry import Panel

HDF5 = "HDF5"
CBF = "CBF"
CBF_GZ = "CBF.gz"

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_CBF_MAGIC = b"###CBF: VERSION"
_GZIP_MAGIC = b"\x1f\x8b"
# a few formats users may meet, to name them in the error (magic bytes at offset 0)
_OTHER_MAGIC = (
    (b"II*\x00", "TIFF (little-endian)"),
    (b"MM\x00*", "TIFF (big-endian)"),
    (b"{\n", "ESRF EDF (or another text-header image)"),
    (b"\x93NUMPY", "NumPy .npy"),
    (b"PK\x03\x04", "zip archive"),
    (b"BZh", "bzip2-compressed file"),
    (b"\xfd7zXZ\x00", "xz-compressed file"),
)


class UnsupportedFormat(ValueError):
    """The file is not HDF5, CBF or gzip-compressed CBF; the message names what it is."""


def detect_format(path: Path) -> str:
    """:data:`HDF5`, :data:`CBF` or :data:`CBF_GZ`, from the first bytes of ``path``.

    HDF5's signature may sit at offset 0, 512, 1024, 2048, ... (a user block); the other
    formats are recognised at offset 0.

    Raises
    ------
    UnsupportedFormat
        Naming the format by its magic bytes where known, else the file's extension and
        first bytes.
    OSError
        The file cannot be read.
    """
    with open(path, "rb") as fh:
        head = fh.read(64)
        if head.startswith(_HDF5_MAGIC):
            return HDF5
        if head.startswith(_CBF_MAGIC):
            return CBF
        if head.startswith(_GZIP_MAGIC):
            fh.seek(0)
            try:
                with gzip.open(fh) as gz:
                    inner = gz.read(len(_CBF_MAGIC))
            except (OSError, EOFError) as e:
                raise UnsupportedFormat(f"a gzip file that cannot be decompressed ({e})") from e
            if inner.startswith(_CBF_MAGIC):
                return CBF_GZ
            raise UnsupportedFormat(
                "a gzip-compressed file that is not a CBF (only .cbf.gz frames are read "
                "compressed as a whole)"
            )
        offset = 512
        size = path.stat().st_size
        while offset + 8 <= size:
            fh.seek(offset)
            if fh.read(8) == _HDF5_MAGIC:
                return HDF5
            offset *= 2
    raise UnsupportedFormat(describe(path, head))


def describe(path: Path, head: bytes) -> str:
    """What a file of an unsupported format looks like, for an error message."""
    for magic, name in _OTHER_MAGIC:
        if head.startswith(magic):
            kind = name
            break
    else:
        kind = "an unknown format" if head else "an empty file"
    ext = "".join(path.suffixes[-2:]) or "(no extension)"
    return (
        f"format not supported: {kind} (extension {ext}, first bytes {head[:8].hex(' ')}); "
        "frames must be HDF5 (signature 89 48 44 46), CBF ('###CBF: VERSION') or "
        "gzip-compressed CBF, as CrystFEL reads"
    )


def read_cbf(path: Path, gz: bool) -> tuple[np.ndarray, bool]:
    """The image array of a CBF file, float32 ``[ss, fs]``, values as stored, and whether
    the stored type is floating point (then non-finite values are bad pixels).

    Byte-offset (and the other CBF compressions fabio knows) are decompressed by fabio;
    ``gz`` decompresses the whole file first.

    Raises
    ------
    ValueError
        The file is truncated or corrupt (fabio's reason), or holds no 2-D array.
    """
    import fabio.cbfimage  # ~0.1 s import: only for CBF data sets

    img = fabio.cbfimage.CbfImage()
    try:
        if gz:
            with gzip.open(path) as fh:
                img.read(io.BytesIO(fh.read()))
        else:
            img.read(str(path))
        data = img.data
    except Exception as e:  # fabio raises AssertionError, KeyError, ... on bad input
        why = str(e) or "truncated or corrupt file"
        raise ValueError(f"cannot decode the CBF image: {type(e).__name__}: {why}") from e
    if data is None or data.ndim != 2:
        raise ValueError("the CBF file holds no 2-D image array")
    expected = _header_shape(img.header)
    if expected is not None and data.shape != expected:
        raise ValueError(
            f"the CBF image has shape {data.shape} but its header declares {expected} "
            "(truncated?)"
        )
    return np.asarray(data, dtype=np.float32), data.dtype.kind == "f"


def _header_shape(header: dict) -> tuple[int, int] | None:
    try:
        fast = int(header["X-Binary-Size-Fastest-Dimension"])
        slow = int(header["X-Binary-Size-Second-Dimension"])
    except (KeyError, ValueError):
        return None
    return slow, fast


def flat_rows(arr: np.ndarray, panels: Sequence[Panel]) -> np.ndarray | None:
    """The panels' pixels one after the other as a view of the 2-D ``arr``, when every
    panel spans whole rows and the panels follow one another without gaps; else None."""
    width = arr.shape[1]
    row = panels[0].min_ss if panels else 0
    for p in panels:
        if p.min_fs != 0 or p.max_fs != width - 1 or p.min_ss != row:
            return None
        row = p.max_ss + 1
    return arr.reshape(-1)[panels[0].min_ss * width : row * width] if panels else None
