"""The import graph of the rsn_tf package, read from its source (``ast``), and the circles in it."""
import ast
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def import_graph(package: str = "rsn_tf") -> dict[str, set[str]]:
    """:func:`graph_in_this_process`, computed in a fresh interpreter: in CI, after other tests had run in
    the same process, CPython 3.11.7's ``ast.parse`` raised "SystemError: AST constructor recursion depth
    mismatch" on a plain source file."""
    code = (f"import json, sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"from import_graph import graph_in_this_process as g; "
            f"print(json.dumps({{k: sorted(v) for k, v in g({package!r}).items()}}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    return {k: set(v) for k, v in json.loads(out.stdout).items()}


def graph_in_this_process(package: str = "rsn_tf") -> dict[str, set[str]]:
    """``{module: modules of the package it imports}`` from the source (every ``import`` statement,
    at any depth: a function-level import closes a circle as surely as a top-level one)."""
    root = os.path.join(REPO, package)
    modules = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), REPO)[:-3].replace(os.sep, ".")
                modules[rel[:-9] if rel.endswith(".__init__") else rel] = os.path.join(dirpath, f)
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(open(path).read(), path)):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def cycles_through(graph: dict[str, set[str]], prefix: str) -> list[list[str]]:
    """Every import circle (as a module path) that passes through a module starting with ``prefix``."""
    found = []
    for start in sorted(m for m in graph if m.startswith(prefix)):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for dep in sorted(graph[node]):
                if dep == start:
                    found.append(path + [start])
                elif dep not in path and dep > start:  # report each circle once, from its smallest member
                    stack.append((dep, path + [dep]))
    return found
