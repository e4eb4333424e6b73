"""What a maintainer relies on: one namespace, no import cycles, backend behaviour in one place."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the import name of each source folder (pyproject's package-dir maps the top-level ones)
PACKAGES = {"advisor": "advisor", "rules": "advisor.rules", "knowledge": "advisor.knowledge",
            "probes": "advisor.probes"}


def _modules() -> dict[str, Path]:
    out = {}
    for folder, name in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([name, *parts])] = path
    return out


def _imports(path: Path, modules: dict[str, Path], me: str) -> set[str]:
    """Every advisor module this file imports, at the top or inside a function."""
    found = set()
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in typing_only:  # type names only, never imported at run time
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for n in names:
            while n and n not in modules:
                n = n.rpartition(".")[0]
            if n and n != me and not me.startswith(n + "."):  # a package's own __init__ is not a cycle
                found.add(n)
    return found


def test_no_import_cycles():
    modules = _modules()
    graph = {m: _imports(p, modules, m) for m, p in modules.items()}
    cycles = []

    def visit(node, stack, seen):
        for nxt in graph[node]:
            if nxt in stack:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in seen:
                seen.add(nxt)
                visit(nxt, stack + [nxt], seen)

    for m in graph:
        visit(m, [m], {m})
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:5])


def test_no_backend_name_comparisons_outside_the_backend_objects():
    from advisor.knowledge import load_knowledge

    names = set(load_knowledge().backends)
    hits = []
    for mod, path in _modules().items():
        if mod == "advisor.backends":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                consts = [c for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
                consts += [e for c in node.comparators if isinstance(c, (ast.Tuple, ast.List, ast.Set))
                           for e in c.elts if isinstance(e, ast.Constant)]
                if any(c.value in names for c in consts):
                    hits.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "startswith" and node.args
                    and isinstance(node.args[0], ast.Constant) and node.args[0].value in names):
                hits.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not hits, "backend names compared outside advisor/backends.py: " + ", ".join(hits)
