"""Which minikf subpackages import which (imports inside functions and `TYPE_CHECKING` blocks
counted too, since they are real dependencies), and whether that graph has a cycle.

    python tools/import_graph.py            # the graph, one line per package; exit 1 on a cycle

A subpackage is minikf/<name>/ or a top-level module minikf/<name>.py. tests/test_architecture.py
runs the same check in CI, plus the layer order below.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "minikf"


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "minikf"


def _imports(tree: ast.AST, here: str) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = here.split(".")[: -node.level]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append(module)
            if module == "minikf":
                found += [f"minikf.{a.name}" for a in node.names]
    return [m for m in found if m == "minikf" or m.startswith("minikf.")]


def graph(package: Path = PACKAGE) -> dict[str, dict[str, list[str]]]:
    """unit -> {imported unit: [files that import it]}."""
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        source = _unit(module) if len(rel.parts) > 2 or rel.name == "__init__" else rel.parts[-1]
        if source == "__init__":
            source = "minikf"
        for target in _imports(ast.parse(path.read_text(), str(path)), module):
            unit = _unit(target)
            if unit not in (source, "minikf"):
                edges[source][unit].append(str(path.relative_to(package.parent)))
    return edges


def cycles(edges: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Every strongly connected group of more than one unit (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    nodes = set(edges) | {t for targets in edges.values() for t in targets}

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return found


def main() -> int:
    edges = graph()
    for unit in sorted(edges):
        print(f"{unit:14} -> {', '.join(sorted(edges[unit]))}")
    found = cycles(edges)
    for group in found:
        print(f"cycle: {' <-> '.join(group)}", file=sys.stderr)
        for a in group:
            for b in group:
                if b in edges.get(a, {}):
                    print(f"  {a} -> {b}: {', '.join(sorted(set(edges[a][b])))}", file=sys.stderr)
    print("no cycles" if not found else f"{len(found)} cycle(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
