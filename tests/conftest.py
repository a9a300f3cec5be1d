"""Shared fixtures.

``ref_small`` points at CrystFEL's recorded reference data (``../shared/data/ref-small``
beside the clone).  Tests that need it skip cleanly when it is absent, so a plain clone
still passes.
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


@pytest.fixture(scope="session")
def ref_small() -> Path:
    """Directory of the CrystFEL 0.12.0 reference data set (skip if absent)."""
    if REF_SMALL is None:
        pytest.skip("../shared/data/ref-small not present")
    return REF_SMALL
