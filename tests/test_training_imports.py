"""The training package has no import circles (module-level or inside functions): the ``fit`` trainer
and the multi-worker loop share ``training/step.py`` and ``training/workdir.py`` instead of importing
each other's private helpers."""
import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_graph(package: str = "rsn_tf") -> dict[str, set[str]]:
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


def test_no_import_circles_through_training():
    graph = import_graph()
    assert "rsn_tf.training.step" in graph["rsn_tf.training.trainer"]
    assert "rsn_tf.training.step" in graph["rsn_tf.training.multiworker"]
    assert "rsn_tf.training.trainer" not in graph["rsn_tf.training.multiworker"]
    assert cycles_through(graph, "rsn_tf.training") == []


def test_the_cycle_finder_finds_the_old_circle():
    """The trainer <-> multiworker circle as it was (each imported the other inside a function)."""
    graph = {"a.trainer": {"a.multiworker"}, "a.multiworker": {"a.trainer", "a.callbacks"}, "a.callbacks": set()}
    assert cycles_through(graph, "a") == [["a.multiworker", "a.trainer", "a.multiworker"]]


def test_no_import_circles_anywhere_in_the_package():
    """Nor anywhere else: the export core is a leaf that exporter and agreement both use, and a package's
    ``__init__`` is never imported back by its own submodules."""
    graph = import_graph()
    assert "rsn_tf.export.exporter" not in graph["rsn_tf.export.agreement"]
    assert cycles_through(graph, "rsn_tf") == []
