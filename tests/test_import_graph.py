"""No import circles: every module of spine_det imports on its own, and the import graph (every
``import`` statement, lazy ones inside functions included) is acyclic between modules and between
the package's folders (data, evaluation, engine, ...; a top-level module such as tasks.py counts as
its own node). A lazy import hides a circle from Python, not from the design: this test sees it."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spine_det"
Edge = Tuple[str, str]


def package_modules(package: Path = PACKAGE) -> Dict[str, Path]:
    """``{"spine_det.data.coco": path, "spine_det.data": .../__init__.py, ...}``."""
    out = {}
    for f in sorted(package.rglob("*.py")):
        parts = f.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _target(name: str, modules: Dict[str, Path]) -> Optional[str]:
    """The module an imported name lives in (``spine_det.data.io.DataError`` -> ``spine_det.data.io``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_edges(modules: Dict[str, Path]) -> Dict[Edge, int]:
    """``{(importer, imported): line}`` over every import statement of the package, wherever it is
    (module level, inside a function, under ``if``), plus ``importlib.import_module("literal")``."""
    edges: Dict[Edge, int] = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names: List[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from .x import y
                    base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                names = [f"{mod}.{a.name}" for a in node.names]
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
                  and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                names = [node.args[0].value]
            for n in names:
                t = _target(n, modules) if n.startswith("spine_det") else None
                if t and t != name:
                    edges.setdefault((name, t), node.lineno)
    return edges


def folder_of(module: str, modules: Dict[str, Path]) -> str:
    """``spine_det.data.phantom.render`` -> ``spine_det.data``; a top-level module is its own node."""
    parts = module.split(".")
    if len(parts) >= 3 or (len(parts) == 2 and modules[module].name == "__init__.py"):
        return ".".join(parts[:2])
    return module


def cycles(nodes: Set[str], edges: Set[Edge]) -> List[List[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    succ: Dict[str, List[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for n in sorted(nodes):
        if n not in index:
            visit(n)
    return out


def shortest_cycle(comp: List[str], edges: Set[Edge]) -> List[str]:
    """A shortest circle through the component ``comp``: ``[a, b, ..., a]``."""
    best: List[str] = []
    for start in comp:
        prev: Dict[str, str] = {}
        frontier, seen = [start], {start}
        while frontier and start not in prev:
            nxt = []
            for a in frontier:
                for x, b in sorted(edges):
                    if x == a and b in comp and (b == start or b not in seen):
                        if b not in prev:
                            prev[b] = a
                        seen.add(b)
                        nxt.append(b)
            frontier = nxt
        if start in prev:
            path = [start]
            while len(path) == 1 or path[-1] != start:
                path.append(prev[path[-1]])
            path = path[::-1]
            if not best or len(path) < len(best):
                best = path
    return best


def _explain(comps: List[List[str]], edges: Dict[Edge, int], key, modules: Dict[str, Path]) -> str:
    """One line per circle: its shortest loop, each step shown by one import statement (file:line)."""
    lines = []
    node_edges = {(key(a), key(b)) for a, b in edges if key(a) != key(b)}
    for comp in comps:
        loop = shortest_cycle(comp, node_edges)
        steps = []
        for a, b in zip(loop, loop[1:]):
            m, t, ln = min((m, t, ln) for (m, t), ln in edges.items() if key(m) == a and key(t) == b)
            steps.append(f"{modules[m].relative_to(PACKAGE.parent)}:{ln} imports {t}")
        lines.append(f"{' -> '.join(loop)}  ({'; '.join(steps)})" + (f"  [component: {', '.join(comp)}]" if len(comp) > 2 else ""))
    return "\n".join(lines)


def test_no_import_cycle_between_modules():
    modules = package_modules()
    edges = import_edges(modules)
    comps = cycles(set(modules), set(edges))
    assert not comps, "import circles between modules:\n" + _explain(comps, edges, lambda m: m, modules)


def test_no_import_cycle_between_folders():
    modules = package_modules()
    edges = import_edges(modules)
    fold = {m: folder_of(m, modules) for m in modules}
    folder_edges = {(fold[a], fold[b]) for a, b in edges if fold[a] != fold[b]}
    comps = cycles(set(fold.values()), folder_edges)
    assert not comps, "import circles between folders:\n" + _explain(comps, edges, fold.get, modules)


def test_graph_sees_lazy_imports(tmp_path):
    """The checker itself: a circle closed only by an import inside a function is found."""
    pkg = tmp_path / "spine_det"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("from spine_det.a.y import f\n")
    (pkg / "a" / "y.py").write_text("def f():\n    from spine_det.a import x\n    return x\n")
    (pkg / "b.py").write_text("import importlib\n\ndef g():\n    return importlib.import_module('spine_det.a.x')\n")
    modules = package_modules(pkg)
    edges = import_edges(modules)
    assert ("spine_det.a.y", "spine_det.a.x") in edges and ("spine_det.b", "spine_det.a.x") in edges
    assert cycles(set(modules), set(edges)) == [["spine_det.a.x", "spine_det.a.y"]]
    assert folder_of("spine_det.a.x", modules) == "spine_det.a" and folder_of("spine_det.b", modules) == "spine_det.b"


@pytest.mark.slow
def test_every_module_imports_in_a_fresh_interpreter():
    """Each module of the package imports (in one new interpreter, in name order): no module that
    only works after another one happened to be imported first."""
    names = [m for m in package_modules() if not m.endswith(".__main__")]
    code = ("import importlib, sys, traceback\nbad = []\nfor n in sys.argv[1:]:\n    try:\n        importlib.import_module(n)\n"
            "    except Exception as e:\n        bad.append(f'{n}: {type(e).__name__}: {e}')\nprint('\\n'.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "", out.stdout
