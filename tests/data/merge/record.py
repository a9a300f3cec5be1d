"""Record process_hkl's outputs for tests/test_merge_options.py (run from the repository root:
``python tests/data/merge/record.py /path/to/crystfel/bin``)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from tests.merge_stream import CASES, build_merge_stream  # noqa: E402

here = Path(__file__).resolve().parent
process_hkl = (
    Path(sys.argv[1]) / "process_hkl" if len(sys.argv) > 1 else Path(shutil.which("process_hkl"))
)
with tempfile.TemporaryDirectory() as tmp:
    stream = Path(tmp) / "merge_synth.stream"
    stream.write_bytes(build_merge_stream())
    print("stream md5", hashlib.md5(stream.read_bytes()).hexdigest())
    for name, opts in CASES.items():
        opts = [o.replace("STAT", f"{name}.stat") for o in opts]
        subprocess.run([str(process_hkl), "-i", stream.name, "-o", f"{name}.hkl", *opts],
                       cwd=tmp, check=True, capture_output=True)
        for suffix in (".hkl", ".stat"):
            out = Path(tmp) / f"{name}{suffix}"
            if out.exists():
                (here / out.name).write_bytes(out.read_bytes())
