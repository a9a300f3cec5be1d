"""Shared fixtures.

``ref_small`` points at CrystFEL's recorded reference data (``../shared/data/ref-small``
beside the clone).  Tests that need it skip cleanly when it is absent, so a plain clone
still passes.

The chunk-index cache (``stream/index.py``) goes to a temporary directory for the whole
session (``$STREAMFILTER_CACHE``, inherited by the commands tests run in subprocesses), never
to the user's ``~/.cache/streamfilter``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _find_ref_small() -> Path | None:
    env = os.environ.get("STREAMFILTER_REF_SMALL")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data" / "ref-small")
    for c in candidates:
        if (c / "lyso_dev_r345.stream").is_file():
            return c
    return None


REF_SMALL = _find_ref_small()
# why the tests that need it skip, as the summary shows it
REF_SMALL_MISSING = (
    "../shared/data/ref-small not present (reference data of CrystFEL 0.12.0, not shipped; "
    "STREAMFILTER_REF_SMALL=DIR points at another copy)"
)


@pytest.fixture(scope="session")
def ref_small() -> Path:
    """Directory of the CrystFEL 0.12.0 reference data set (skip if absent)."""
    if REF_SMALL is None:
        pytest.skip(REF_SMALL_MISSING)
    return REF_SMALL


REF_DETECTORS = REPO.parent / "shared" / "data" / "ref-detectors"
# why the tests that need one of its sets skip
REF_DETECTORS_MISSING = (
    "../shared/data/ref-detectors/{name} not present (CrystFEL 0.12.0 reference streams on a "
    "real detector layout, not shipped)"
)


def ref_detector_set(name: str) -> Path:
    """Folder of one ref-detectors set (``cspad``, ``agipd``, ``pilatus-cbf``); skip if absent."""
    folder = REF_DETECTORS / name
    if not (folder / f"{name}_r345.stream").is_file():
        pytest.skip(REF_DETECTORS_MISSING.format(name=name))
    return folder


@pytest.fixture(scope="session", autouse=True)
def index_cache(tmp_path_factory) -> Path:
    """The session's chunk-index cache directory (``$STREAMFILTER_CACHE``)."""
    cache = tmp_path_factory.mktemp("index-cache")
    previous = os.environ.get("STREAMFILTER_CACHE")
    os.environ["STREAMFILTER_CACHE"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("STREAMFILTER_CACHE", None)
    else:
        os.environ["STREAMFILTER_CACHE"] = previous
