"""Dev: the house-rule counts of issue 31 (item 6), per folder, from the source alone (an AST walk; nothing is
imported), so that they can be recounted after any merge:

    python dev/house_rules.py [PATH ...] [--depth 2] [--list imports|basicconfig|except|noqa]

- ``imports in functions``: import statements (``import x`` / ``from x import y``, one per statement) whose
  enclosing scope is a function or method, at any depth; also per 1,000 lines (all lines of the files);
- ``basicConfig``: calls of ``logging.basicConfig`` (library code must not configure logging);
- ``broad except``: handlers of ``except Exception``, ``except BaseException`` or a bare ``except:``
  (alone or in a tuple);
- ``noqa``: ``# noqa`` markers (comments only, found by the tokenizer).

PATH defaults to ``spine_det``; folders are summed at ``--depth`` path components (``spine_det/data`` at 2).
``--list KIND`` prints every occurrence (file:line) instead, to review them one by one.
"""
from __future__ import annotations

import argparse
import ast
import io
import tokenize
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

KINDS = ("imports", "basicconfig", "except", "noqa")


def _is_broad(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, ast.Name) and n.id in ("Exception", "BaseException") for n in names)


def _imports_in_functions(tree: ast.AST) -> Iterator[int]:
    def walk(node: ast.AST, in_function: bool) -> Iterator[int]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)) and in_function:
                yield child.lineno
            yield from walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))
    yield from walk(tree, False)


def _basicconfig_calls(tree: ast.AST) -> Iterator[int]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Attribute) and f.attr == "basicConfig") or (isinstance(f, ast.Name) and f.id == "basicConfig"):
                yield node.lineno


def _noqa_lines(text: str) -> Iterator[int]:
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT and "noqa" in tok.string.lower():
            yield tok.start[0]


def occurrences(path: Path) -> Tuple[int, Dict[str, List[int]]]:
    """``(number of lines, {kind: [line, ...]})`` of one Python file."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, str(path))
    found = {
        "imports": list(_imports_in_functions(tree)),
        "basicconfig": list(_basicconfig_calls(tree)),
        "except": [h.lineno for h in ast.walk(tree) if isinstance(h, ast.ExceptHandler) and _is_broad(h)],
        "noqa": list(_noqa_lines(text)),
    }
    return len(text.splitlines()), found


def python_files(paths: List[str]) -> List[Path]:
    out: List[Path] = []
    for p in map(Path, paths):
        out += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", default=["spine_det"])
    ap.add_argument("--depth", type=int, default=2, help="path components that name a folder's row (default 2)")
    ap.add_argument("--list", choices=KINDS, help="print every occurrence of one kind (file:line)")
    a = ap.parse_args()
    rows: Dict[str, Dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for f in python_files(a.paths):
        n_lines, found = occurrences(f)
        if a.list:
            for ln in found[a.list]:
                print(f"{f}:{ln}")
            continue
        parts = f.parts[:-1][: a.depth]
        for key in ("/".join(parts), "total"):
            rows[key]["lines"] += n_lines
            rows[key]["files"] += 1
            for k in KINDS:
                rows[key][k] += len(found[k])
    if a.list:
        return
    print("| folder | files | lines | imports in functions | per 1,000 lines | basicConfig | broad except | noqa |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for key in sorted(rows, key=lambda k: (k == "total", k)):
        r = rows[key]
        print(f"| {key} | {r['files']} | {r['lines']} | {r['imports']} | {1000 * r['imports'] / max(r['lines'], 1):.1f} "
              f"| {r['basicconfig']} | {r['except']} | {r['noqa']} |")


if __name__ == "__main__":
    main()
