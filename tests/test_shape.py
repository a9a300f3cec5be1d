"""The package has the shape its README promises, measured from the source.

- argparse is imported only under ``streamfilter/cli/`` (the command line parses, the
  library does not);
- ``streamfilter/integrate/`` imports nothing from ``streamfilter.stream`` or
  ``streamfilter.predict`` (integrators take plain arrays);
- no import cycle between the package's modules (imports inside functions count too);
- no module over 1000 lines, at most three over 700;
- no function body over 80 lines;
- no module-level cache keyed by object identity (``id()``) and no module-level
  ``threading.local`` state.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "streamfilter"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def _imports(name: str) -> set[str]:
    """The package modules ``name`` imports (anywhere in the file), resolved to modules."""
    is_package = MODULES[name].name == "__init__.py"
    found = set()
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]  # fmt: skip
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def test_argparse_only_in_the_cli():
    users = [
        name
        for name, tree in TREES.items()
        for node in ast.walk(tree)
        if (isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names))
        or (isinstance(node, ast.ImportFrom) and node.module == "argparse")
    ]
    assert [u for u in users if not u.startswith("streamfilter.cli")] == []


def test_integrators_know_nothing_of_streams_or_prediction():
    bad = {
        (name, dep)
        for name, deps in GRAPH.items()
        if name.startswith("streamfilter.integrate")
        for dep in deps
        if dep.startswith(("streamfilter.stream", "streamfilter.predict"))
    }
    assert bad == set()


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                out.append(sorted(scc))

    for v in GRAPH:
        if v not in index:
            visit(v)
    return out


def _submodule_edge(a: str, b: str) -> bool:
    # a package's __init__ re-exporting its own modules is not a dependency cycle
    return b.startswith(a + ".") or a.startswith(b + ".")


def test_no_import_cycle():
    cycles = []
    for scc in _cycles():
        inner = {v: {w for w in GRAPH[v] if w in scc and not _submodule_edge(v, w)} for v in scc}
        if any(inner.values()):
            cycles.append({v: sorted(ws) for v, ws in inner.items() if ws})
    assert cycles == []


def test_module_sizes():
    lines = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {n: c for n, c in lines.items() if c > 1000} == {}
    assert len([n for n, c in lines.items() if c > 700]) <= 3, sorted(
        (c, n) for n, c in lines.items() if c > 700
    )


def test_function_bodies_fit_on_a_screen():
    long = []
    for name, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = node.body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                    start = first.end_lineno + 1  # the docstring is not body
                else:
                    start = first.lineno
                n = node.end_lineno - start + 1
                if n > 80:
                    long.append((name, node.name, n))
    assert long == []


def _module_level_mutables(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        targets, value = [], None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        if value is None:
            continue
        mutable = isinstance(value, ast.Dict) or (
            isinstance(value, ast.Call)
            and getattr(value.func, "attr", getattr(value.func, "id", ""))
            in ("dict", "OrderedDict", "WeakValueDictionary", "defaultdict")
        )
        names.update(t.id for t in targets if mutable and isinstance(t, ast.Name))
    return names


def _calls_id(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "id"
        for n in ast.walk(node)
    )


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_level_cache_keyed_by_identity(name):
    tree = TREES[name]
    mutables = _module_level_mutables(tree)
    keyed_by_id = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) in mutables:
            if _calls_id(node.slice):
                keyed_by_id.append(node.lineno)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and getattr(node.func.value, "id", None) in mutables
            and any(_calls_id(a) for a in node.args)
        ):
            keyed_by_id.append(node.lineno)
    local_state = [
        node.lineno
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and getattr(node.value.func, "attr", None) == "local"
    ]
    assert keyed_by_id == [] and local_state == []
