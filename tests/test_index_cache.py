"""The test suite keeps the chunk-index cache out of the user's ``~/.cache/streamfilter``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamfilter.cli import main
from streamfilter.stream.index import _cache_path

from .conftest import REPO
from .streamtext import build_stream


def _user_caches() -> list[Path]:
    """Where the index would go without ``$STREAMFILTER_CACHE``."""
    dirs = [Path.home() / ".cache" / "streamfilter"]
    if os.environ.get("XDG_CACHE_HOME"):
        dirs.append(Path(os.environ["XDG_CACHE_HOME"]) / "streamfilter")
    return dirs


@pytest.mark.parametrize("how", ["in-process", "subprocess"])
def test_split_in_the_tests_leaves_the_user_cache_untouched(index_cache, tmp_path, how):
    stream = tmp_path / "s.stream"
    stream.write_bytes(build_stream(seed=5, n_chunks=12).text)
    argv = ["split", str(stream), "-n", "3", "-o", str(tmp_path / "part")]
    if how == "in-process":
        assert main(argv) == 0
    else:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        r = subprocess.run([sys.executable, "-m", "streamfilter", *argv], env=env,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    assert len(list(tmp_path.glob("part-*.stream"))) == 3
    # the index of this stream was cached in the session's directory, not in the user's
    cached = _cache_path(stream)[0]
    assert cached.parent == index_cache and cached.is_file()
    for d in _user_caches():
        assert not (d / cached.name).exists()
