"""The documentation site in docs/ builds without a warning and covers every command."""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from streamfilter.cli import SUBCOMMANDS, build_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = (REPO / "README.md").read_text()


def test_mkdocs_build_strict_has_no_warning(tmp_path):
    """Broken links and anchors, pages missing from the nav: any warning fails the build."""
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (it is in the [test] extra)")
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO, capture_output=True, text=True,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert "WARNING" not in log, log
    for page in DOCS.rglob("*.md"):
        rel = page.relative_to(DOCS).with_suffix("")
        # directory URLs: methods.md -> methods/index.html, commands/index.md -> commands/index.html
        folder = rel.parent if rel.name == "index" else rel
        html = site / folder / "index.html"
        assert html.is_file(), f"{page} was not rendered"


def _subcommand_parser(command: str) -> argparse.ArgumentParser:
    parser = build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_option_of_every_command_is_documented(command):
    """Each subcommand has its page, listed in the nav, naming every option of its --help."""
    page = DOCS / "commands" / f"{command}.md"
    assert page.is_file(), f"no documentation page for streamfilter {command}"
    assert f"commands/{command}.md" in (REPO / "mkdocs.yml").read_text()
    text = page.read_text()
    missing = []
    for action in _subcommand_parser(command)._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        if not any(re.search(r"(?<![\w-])" + re.escape(o) + r"(?![\w-])", text)
                   for o in action.option_strings):
            missing.append("/".join(action.option_strings))
    assert not missing, f"{page.name} does not mention {missing}"


def _anchors(markdown: str) -> set[str]:
    """The ids Python-Markdown's toc extension gives the headings (code spans as text)."""
    from markdown.extensions.toc import slugify  # mkdocs' dependency

    return {slugify(re.sub(r"[`*]", "", h), "-")
            for h in re.findall(r"^#+ (.+)$", markdown, re.M)}


def test_readme_links_into_docs_resolve():
    """The README's links point at existing files and, for docs pages, existing headings."""
    if importlib.util.find_spec("markdown") is None:
        pytest.skip("markdown (mkdocs' dependency) is not installed")
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    local = [link for link in links if "://" not in link]
    assert any(link.startswith("docs/") for link in local)
    for link in local:
        path, _, anchor = link.partition("#")
        target = REPO / path
        assert target.exists(), f"README links to {link}: no such file"
        if anchor and target.suffix == ".md":
            assert anchor in _anchors(target.read_text()), f"README links to {link}: no heading"


def _transcript(text: str) -> list[tuple[str, list[str]]]:
    """(command, shown output lines) of every ``$ streamfilter …`` line in the page's blocks."""
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```\n(\$ streamfilter .*?)```", text, re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
    return steps


def test_getting_started_walkthrough_prints_what_the_page_shows(tmp_path):
    """The first run on stream_files/example.stream: each command of the page runs and prints
    the lines the page shows (a line cut with '…' is matched up to the cut; the run time is
    left out)."""
    steps = _transcript((DOCS / "getting-started.md").read_text())
    assert [cmd.split()[1] for cmd, _ in steps] == [
        "info", "check", "reintegrate", "merge", "stats", "compare"]
    for command, shown in steps:
        argv = command.replace("/tmp/", f"{tmp_path}/").split()
        argv[0:1] = [sys.executable, "-m", "streamfilter"]
        proc = subprocess.run(argv, cwd=REPO / "stream_files", capture_output=True, text=True)
        assert proc.returncode == 0, f"{command}\n{proc.stderr}"
        printed = (proc.stdout + proc.stderr).splitlines()
        for line in (s.replace("/tmp/", f"{tmp_path}/") for s in shown):
            if re.match(r"\s*time [\d.]+ s \(", line):
                continue
            head = line.split("…")[0].rstrip()
            assert any(p == line or ("…" in line and p.startswith(head)) for p in printed), (
                f"{command}: the page shows\n{line}\nbut it printed\n" + "\n".join(printed))


def test_demo_output_on_the_page_is_what_the_demo_prints():
    """The 60-second demo's output on the getting-started page, digit for digit (the
    timings in parentheses aside)."""
    page = (DOCS / "getting-started.md").read_text()
    shown = re.search(r"It takes a few seconds and prints:\n\n```\n(.*?)```", page, re.S).group(1)
    proc = subprocess.run([sys.executable, "-m", "streamfilter", "demo"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

    def untimed(text: str) -> list[str]:
        return [re.sub(r"\(\d+\.\d s\)", "(t)", line).rstrip() for line in text.splitlines()]

    assert untimed(proc.stdout + proc.stderr) == untimed(shown)
    # the README quotes the header and the last rows of the same table
    quoted = re.search(r"The last rows:\n\n```\n(.*?)```", README, re.S).group(1)
    assert set(untimed(quoted)) <= set(untimed(shown))
