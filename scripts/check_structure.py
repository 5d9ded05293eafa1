"""Check the package's structure rules (part of ``make lint``); exit 1 listing each breach.

    python scripts/check_structure.py [PACKAGE_DIR ...]   (default: sar2opt_geo plugin/sar2opt_qgis)

Rules (issue 23):
- no import cycle between modules, counting imports inside functions too (they are how a
  cycle hides), nor between the package's subpackages (imports run one way: sensors ->
  preprocess -> engine -> models, ...);
- no module over 500 lines, no function over 100 lines, none with more than 8 positional
  parameters (``self``/``cls`` not counted; the rest keyword-only);
- no import of another module's private name (``from x import _y``, or ``x._y`` on an
  imported module ``x``).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 100
MAX_POSITIONAL = 8
ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path, top: Path) -> str:
    """Dotted name of ``path`` inside the package folder ``top``."""
    parts = [top.name, *path.relative_to(top).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    """Absolute module named by a (possibly relative) ``from`` import in module ``name``."""
    if not node.level:
        return node.module or ""
    base = name.split(".")
    drop = node.level - 1 if is_package else node.level
    base = base[: len(base) - drop] if drop else base
    return ".".join([*base, node.module] if node.module else base)


def _imports(tree: ast.Module, name: str, is_package: bool, modules: set[str]) -> tuple[set[str], list[str]]:
    """Modules of the package that ``tree`` imports, and its private-name imports."""
    found: set[str] = set()
    private: list[str] = []
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    found.add(alias.name)
                    aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, name, is_package)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:
                    found.add(sub)
                    aliases[alias.asname or alias.name] = sub
                elif target in modules:
                    found.add(target)
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        private.append(f"line {node.lineno}: from {target} import {alias.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            private.append(f"line {node.lineno}: {aliases[node.value.id]}.{node.attr}")
    found.discard(name)
    return found, private


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def check(top: Path) -> list[str]:
    """Every breach of the rules in the package folder ``top``."""
    files = {module_name(p, top): p for p in sorted(top.rglob("*.py"))}
    modules = set(files)
    graph: dict[str, set[str]] = {}
    problems: list[str] = []
    for name, path in files.items():
        text = path.read_text()
        tree = ast.parse(text)
        rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            problems.append(f"{rel}: {lines} lines (limit {MAX_MODULE_LINES})")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    problems.append(f"{rel}:{node.lineno}: function {node.name} is {length} lines (limit {MAX_FUNCTION_LINES})")
                positional = [a.arg for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls")]
                if len(positional) > MAX_POSITIONAL:
                    problems.append(f"{rel}:{node.lineno}: function {node.name} takes {len(positional)} positional "
                                    f"parameters (limit {MAX_POSITIONAL}; make the rest keyword-only)")
        graph[name], private = _imports(tree, name, path.name == "__init__.py", modules)
        problems += [f"{rel}: private name imported, {p}" for p in private]
    for component in _cycles(graph):
        problems.append("import cycle: " + " <-> ".join(component))
    for component in _cycles(_package_graph(graph, top.name)):
        problems.append("subpackage import cycle: " + " <-> ".join(component))
    return problems


def _package_graph(graph: dict[str, set[str]], top: str) -> dict[str, set[str]]:
    """The module graph collapsed to the top package's direct children (subpackages and modules)."""
    def part(name: str) -> str:
        parts = name.split(".")
        return parts[1] if len(parts) > 1 else top

    collapsed: dict[str, set[str]] = {}
    for source, targets in graph.items():
        collapsed.setdefault(part(source), set()).update(part(t) for t in targets if part(t) != part(source))
    collapsed.pop(top, None)  # the package's __init__ re-exports, lazily: not a layer of its own
    return {k: v - {top} for k, v in collapsed.items()}


def main(argv: list[str]) -> int:
    tops = [Path(a).resolve() for a in argv] or [ROOT / "sar2opt_geo", ROOT / "plugin" / "sar2opt_qgis"]
    problems = [p for top in tops for p in check(top)]
    for problem in problems:
        print(problem)
    print(f"structure: {len(problems)} problem(s) in {', '.join(t.name for t in tops)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
