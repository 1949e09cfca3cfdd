"""The import layering of ``services/``: no circles, and no import points up.

Imports are read with ``ast`` from every ``services/**/*.py`` (nothing is imported), at
module level and inside functions alike: a lazy import is still a dependency.

- **Circles**: no two modules of ``services/`` import each other, directly or round a
  loop. Imports under ``if TYPE_CHECKING:`` are left out of this check only (they never
  run); they still count for the layers below.
- **Packages**: each layer may import only from the layers below it, and the packages of
  one layer not from one another.
- **The worker** (``modelbus_worker``): the same rule inside the package, over the
  groups of ``WORKER_LAYERS``. Its parts (pool, handler, batching, tracing, ...) share
  the ports below them and do not import one another.

A package or worker module that no layer names fails the test: place it first.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"

# Lowest first. A layer is a tuple of groups (prefixes of module names); a module may
# import from its own group and from any group of a lower layer, never from another
# group of its own layer nor from a layer above.
PACKAGE_LAYERS: tuple[tuple[tuple[str, ...], ...], ...] = (
    (("modelbus_contract",),),
    (("modelbus_delivery",),),
    # The services and the client SDK: none imports another.
    (("modelbus_discovery",), ("modelbus_catalog",), ("modelbus_worker",), ("modelbus_client",)),
    # The HTTP gateway: a thin adapter over the client SDK.
    (("modelbus_gateway",),),
    (("modelbus",),),
)

_W = "modelbus_worker."
WORKER_LAYERS: tuple[tuple[tuple[str, ...], ...], ...] = (
    (
        # The ports the parts share, the settings they read and pure helpers.
        tuple(_W + m for m in ("ports", "settings", "quantities", "failures")),
        # Runs inside the model container: the contract only.
        (_W + "runtime",),
    ),
    (
        # Builds runtime images: settings and failure memory from below.
        (_W + "images",),
        # The pieces of one request and its answer.
        tuple(_W + m for m in (
            "coercion", "tensor_check", "schema_check", "input_plans", "reply_policy", "request",
            "answer", "replies", "metrics", "problem_reports", "progress_notices", "quarantine",
        )),
    ),
    (  # The parts: each on the ports, none on another.
        (_W + "pool",),
        (_W + "handler",),
        (_W + "answering",),
        (_W + "batching",),
        (_W + "tracing",),
        (_W + "measured",),
        (_W + "preparation",),
    ),
    ((_W + "service",),),  # puts the parts together
)


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module of services/
    line: int
    type_checking: bool  # under ``if TYPE_CHECKING:``

    def __str__(self) -> str:
        where = " (TYPE_CHECKING)" if self.type_checking else ""
        return f"{self.source}:{self.line} imports {self.target}{where}"


def _modules(root: Path) -> dict[str, Path]:
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(
    node: ast.AST, type_checking: bool = False
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node, type_checking
        return
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for child in node.body:
            yield from _import_nodes(child, True)
        for child in node.orelse:
            yield from _import_nodes(child, type_checking)
        return
    for child in ast.iter_child_nodes(node):
        yield from _import_nodes(child, type_checking)


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The deepest module of services/ that ``name`` is or lies in (None: not ours)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _imports(root: Path = SERVICES) -> list[Import]:
    modules = _modules(root)
    found = []
    for source, path in modules.items():
        package = source if path.name == "__init__.py" else source.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, type_checking in _import_nodes(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                names = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            for name in names:
                target = _known(name, modules)
                if target is not None and target != source:
                    found.append(Import(source, target, node.lineno, type_checking))
    return found


def _within(module: str, prefix: str) -> bool:
    return not prefix or module == prefix or module.startswith(prefix + ".")


def _place(
    module: str, layers: tuple[tuple[tuple[str, ...], ...], ...]
) -> tuple[int, int] | None:
    """(layer, group) of the longest prefix naming ``module``."""
    best: tuple[int, int, int] | None = None
    for layer, groups in enumerate(layers):
        for group, prefixes in enumerate(groups):
            for prefix in prefixes:
                if _within(module, prefix) and (best is None or len(prefix) > best[2]):
                    best = (layer, group, len(prefix))
    return None if best is None else best[:2]


def _upward(
    imports: list[Import], layers: tuple[tuple[tuple[str, ...], ...], ...], scope: str
) -> tuple[list[str], list[str]]:
    """Imports inside ``scope`` that break ``layers``; modules no layer names."""
    broken, unplaced = set(), set()
    for imp in imports:
        if not (_within(imp.source, scope) and _within(imp.target, scope)):
            continue
        if imp.source == scope or imp.target == scope:  # the package's own __init__
            continue
        source, target = _place(imp.source, layers), _place(imp.target, layers)
        if source is None or target is None:
            unplaced.update(m for m, p in ((imp.source, source), (imp.target, target)) if not p)
            continue
        if source[0] < target[0] or (source[0] == target[0] and source[1] != target[1]):
            broken.add(str(imp))
    return sorted(broken), sorted(unplaced)


def _cycles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if not imp.type_checking:
            graph.setdefault(imp.source, set()).add(imp.target)
            graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_reader_sees_relative_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    files = {
        "low/__init__.py": "",
        "low/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n",
        "low/b.py": "from . import a\ndef f():\n    from low.sub import c\n",
        "low/sub/__init__.py": "",
        "low/sub/c.py": "import os\nfrom .. import b\nfrom low.a import thing\n",
        "high.py": "import low.sub.c as c\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    imports = _imports(tmp_path)
    assert {(i.source, i.target, i.type_checking) for i in imports} == {
        ("low.a", "low.b", True),
        ("low.b", "low.a", False),
        ("low.b", "low.sub.c", False),  # inside a function
        ("low.sub.c", "low.b", False),
        ("low.sub.c", "low.a", False),  # a name of a module: the module
        ("high", "low.sub.c", False),
    }
    assert _cycles(imports) == [["low.b", "low.sub.c"]]  # a <-> b only under TYPE_CHECKING
    layers = ((("low.a",),), (("low.b",), ("low.sub",)), (("high",),))
    assert _upward(imports, layers, "") == (
        ["low.a:3 imports low.b (TYPE_CHECKING)", "low.b:3 imports low.sub.c",
         "low.sub.c:2 imports low.b"],
        [],
    )
    assert len(_imports()) > 300  # and the walk finds the services


def test_no_module_of_services_is_part_of_an_import_circle() -> None:
    cycles = _cycles(_imports())
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_packages_import_only_from_the_layers_below() -> None:
    broken, unplaced = _upward(_imports(), PACKAGE_LAYERS, "")
    assert not unplaced, f"packages no layer names: {unplaced}"
    assert not broken, "imports across or up the package layers:\n" + "\n".join(broken)


def test_the_worker_modules_import_only_from_the_layers_below() -> None:
    broken, unplaced = _upward(_imports(), WORKER_LAYERS, "modelbus_worker")
    assert not unplaced, f"worker modules no layer names: {unplaced}"
    assert not broken, "imports across or up the worker's layers:\n" + "\n".join(broken)
