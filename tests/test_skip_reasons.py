"""Every skip in the tests says why, in words a reader of the summary (``-ra``) understands:
``pytest.skip`` with a message, ``importorskip`` and ``skipif`` with ``reason=`` (pytest's own
"could not import 'x': No module named 'x'" does not say what x is for)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
MIN_WORDS = 4


def _name(node: ast.AST) -> str:
    return ast.unparse(node)


def _reason(call: ast.Call, positional: int | None) -> ast.AST | None:
    for kw in call.keywords:
        if kw.arg in ("reason", "msg"):
            return kw.value
    if positional is not None and len(call.args) > positional:
        return call.args[positional]
    return None


def _problems(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = _name(node.func)
        if func.endswith("importorskip"):
            reason = _reason(node, None)
        elif func.endswith("mark.skipif"):
            reason = _reason(node, None)
        elif func in ("pytest.skip", "skip"):
            reason = _reason(node, 0)
        else:
            continue
        where = f"{path.name}:{node.lineno} {func}"
        if reason is None:
            out.append(f"{where}: no reason")
        elif isinstance(reason, ast.Constant) and len(str(reason.value).split()) < MIN_WORDS:
            out.append(f"{where}: reason too terse: {reason.value!r}")
    return out


def test_every_skip_in_the_tests_says_why():
    problems = [p for f in sorted(TESTS.glob("*.py")) for p in _problems(f)]
    assert problems == []


def test_the_reference_data_skip_names_what_is_missing():
    from .conftest import REF_SMALL_MISSING

    assert "ref-small" in REF_SMALL_MISSING and "CrystFEL 0.12.0" in REF_SMALL_MISSING
    assert "STREAMFILTER_REF_SMALL" in REF_SMALL_MISSING
