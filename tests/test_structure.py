"""What a maintainer relies on: one namespace, no import cycles, each engine's behaviour in its own module."""

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
    """Every advisor module this file imports: at the top, inside a function, or for type names
    only (under TYPE_CHECKING: a cycle hidden there is still a cycle of the design)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
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


def test_no_import_cycles_type_checking_included():
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


def _compared_constants(tree: ast.AST):
    """(line, constant) of every string compared with ==, !=, in, or passed to startswith."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            consts = [c for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
            consts += [e for c in node.comparators if isinstance(c, (ast.Tuple, ast.List, ast.Set))
                       for e in c.elts if isinstance(e, ast.Constant)]
            for c in consts:
                yield node.lineno, c.value
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "startswith"
                and node.args and isinstance(node.args[0], ast.Constant)):
            yield node.lineno, node.args[0].value


def test_engine_and_scheduler_names_are_compared_only_in_their_own_modules():
    """An engine's behaviour is asked of its object (advisor/engines), a scheduler's of its object
    (advisor/load/schedulers.py); nothing else tells them apart by name."""
    from advisor.engines import KINDS
    from advisor.knowledge import load_knowledge
    from advisor.load import SCHEDULERS

    engine_names = set(load_knowledge(None).backends) | set(KINDS)
    scheduler_kinds = set(SCHEDULERS)
    hits = []
    for mod, path in _modules().items():
        own_engine = mod.startswith("advisor.engines")
        own_scheduler = mod == "advisor.load.schedulers"
        for line, value in _compared_constants(ast.parse(path.read_text())):
            if (value in engine_names and not own_engine) or (value in scheduler_kinds and not own_scheduler):
                hits.append(f"{path.relative_to(ROOT)}:{line} ({value!r})")
    assert not hits, "engine or scheduler names compared outside their modules: " + ", ".join(hits)


def test_each_engine_module_holds_its_memory_speed_scheduler_and_export():
    """A newcomer finds an engine's behaviour in one module: the class its backends rows name, and
    the exporter it registers for its target."""
    from advisor.engines import EXPORTERS, KINDS
    from advisor.engines.base import Engine

    for kind, cls in KINDS.items():
        assert issubclass(cls, Engine) and cls.kind == kind
        assert cls.__module__.startswith("advisor.engines."), cls
    for target, exporter in EXPORTERS.items():
        assert exporter.__module__.startswith("advisor.engines."), (target, exporter.__module__)


def test_the_package_maps_its_folders_without_touching_its_own_path():
    text = (ROOT / "advisor" / "__init__.py").read_text()
    assert "__path__" not in text.replace('"__path__"', "")


def test_every_package_folder_is_installed():
    """A non-editable install (the README's run command) ships only the packages pyproject lists:
    a new folder missing there works in a checkout and fails for every user."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for folder, name in PACKAGES.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    assert found <= listed, f"not installed: {sorted(found - listed)}"
