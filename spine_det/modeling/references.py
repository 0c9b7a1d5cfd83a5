"""References to code in the layers above ``modeling``: ``"package.module:attr"``, checked early, imported late.

A model family names its trainer, predictor and config loader, which live in ``tools``, ``engine`` and
``config`` (layers that import the registry, so it may not import them). A name is resolved (imported)
only when used, like the names in a Detectron2 config, so listing families loads none of their
dependencies. :func:`check_reference` makes a typo fail when the family registers, not when a user
first trains it: it finds the module and its top-level names without importing anything (the
module's source is parsed, never run) and checks how many arguments a function takes.
"""
from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import inspect
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Collection, Dict, Optional, Union

__all__ = ["Reference", "BadReferenceError", "check_callable", "check_reference", "resolve"]

Reference = Union[str, Callable[..., Any]]


class BadReferenceError(ValueError):
    """A reference that cannot be what it says: no such module, no such attribute, wrong arguments."""


def resolve(obj: Reference) -> Any:
    """``"package.module:attr"`` -> the attribute (imported now); anything else is returned as is."""
    if not isinstance(obj, str):
        return obj
    module, _, attr = obj.partition(":")
    value: Any = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        value = getattr(value, part)
    return value


def _find_spec(module: str) -> Optional[importlib.machinery.ModuleSpec]:
    """The spec of ``module`` without importing it or its parents (imported parents are used as they are)."""
    parts = module.split(".")
    spec: Optional[importlib.machinery.ModuleSpec] = None
    search = None
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        loaded = sys.modules.get(name)
        if loaded is not None:
            spec, search = getattr(loaded, "__spec__", None), getattr(loaded, "__path__", None)
            continue
        if i == 0:
            spec = importlib.util.find_spec(name)  # a top-level name: every finder, nothing imported
        else:
            if search is None:
                return None  # the parent is a module, not a package
            spec = importlib.machinery.PathFinder.find_spec(name, list(search))
        if spec is None:
            return None
        search = spec.submodule_search_locations
    return spec


@lru_cache(maxsize=256)
def _top_level_defs(source_file: str) -> Dict[str, ast.AST]:
    """Names bound at the top level of a Python source file (under ``if``/``try`` too), by their node."""
    tree = ast.parse(Path(source_file).read_text(encoding="utf-8"), source_file)
    out: Dict[str, ast.AST] = {}

    def visit(body) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out[node.name] = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name):
                            out[n.id] = node
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:
                    out[(a.asname or a.name).split(".")[0]] = node
            elif isinstance(node, (ast.If, ast.Try)):
                for block in (node.body, getattr(node, "orelse", []), getattr(node, "finalbody", []),
                              *(h.body for h in getattr(node, "handlers", []))):
                    visit(block)

    visit(tree.body)
    return out


def _takes(node: ast.AST, nargs: int) -> bool:
    """Whether a ``def`` can be called with ``nargs`` positional arguments."""
    a = node.args  # type: ignore[attr-defined]
    positional = len(a.posonlyargs) + len(a.args)
    required = positional - len(a.defaults)
    return required <= nargs and (a.vararg is not None or nargs <= positional)


def check_callable(obj: Any, nargs: Optional[int], what: str) -> None:
    """:class:`BadReferenceError` unless ``obj`` is callable (with ``nargs`` positional arguments)."""
    if not callable(obj):
        raise BadReferenceError(f"{what} is not callable ({type(obj).__name__})")
    if nargs is None or inspect.isclass(obj):
        return
    try:
        inspect.signature(obj).bind(*([None] * nargs))
    except TypeError:
        raise BadReferenceError(f"{what} does not take {nargs} positional argument(s): "
                                f"{getattr(obj, '__name__', '')}{inspect.signature(obj)}") from None
    except ValueError:  # no signature (a builtin): nothing to check
        return


def check_reference(ref: Reference, nargs: Optional[int] = None, optional: Collection[str] = ()) -> None:
    """:class:`BadReferenceError` (one line) unless ``ref`` names something that exists and, for a function,
    takes ``nargs`` positional arguments (``None``: not checked; a class always passes).

    A string is checked without importing: its module is found on disk and its source parsed for the
    attribute's top-level definition (a module that is already imported is asked directly). A reference
    into a top-level package named in ``optional`` that is not installed passes: that package is an
    optional dependency, whose absence the family reports when it is used."""
    if not isinstance(ref, str):
        check_callable(ref, nargs, getattr(ref, "__qualname__", repr(ref)))
        return
    module, sep, attr = ref.partition(":")
    if not sep or not module or not attr:
        raise BadReferenceError(f"{ref!r} is not of the form 'package.module:attr'")
    head = attr.split(".")[0]
    loaded = sys.modules.get(module)
    if loaded is not None and getattr(loaded, "__spec__", None) is not None and hasattr(loaded, head):
        obj = loaded
        for part in attr.split("."):
            obj = getattr(obj, part, None)
        check_callable(obj, nargs, repr(ref))
        return
    try:
        spec = _find_spec(module)
    except (ImportError, ValueError) as e:
        raise BadReferenceError(f"{ref!r}: module {module} cannot be found ({type(e).__name__}: {e})") from None
    if spec is None:
        if module.split(".")[0] in optional and importlib.util.find_spec(module.split(".")[0]) is None:
            return
        raise BadReferenceError(f"{ref!r}: no module named {module}")
    origin = spec.origin or ""
    if not origin.endswith(".py") or not Path(origin).is_file():
        return  # an extension or namespace module: its names are not readable without importing it
    defs = _top_level_defs(origin)
    if head not in defs and "__getattr__" not in defs:
        raise BadReferenceError(f"{ref!r}: {module} defines no {head!r}")
    node = defs.get(head)
    if nargs is not None and head == attr and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) \
            and not _takes(node, nargs):
        raise BadReferenceError(f"{ref!r}: {head}() does not take {nargs} positional argument(s)")
