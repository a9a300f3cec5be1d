"""The README's examples run as written."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_readme_opens_with_the_two_commands_ci_runs():
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    assert blocks[0].strip() == "pip install . && streamfilter demo"
    test_command = blocks[1].strip()
    assert test_command in (REPO / ".ci" / "run").read_text()


def test_library_example_runs(tmp_path, monkeypatch, capsys):
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    code = code.replace("/tmp/", f"{tmp_path}/")
    monkeypatch.chdir(REPO)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "(3.0, 4.0, 5.0)" in out and "reintegrate:" in out
    assert (tmp_path / "example_robust.stream").is_file()


def test_info_example_on_the_bundled_stream():
    out = subprocess.run(["streamfilter", "info", "stream_files/example.stream", "-q"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "format 2.3" in out and "int-radius 3,4,5" in out
