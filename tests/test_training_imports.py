"""The training package has no import circles (module-level or inside functions): the ``fit`` trainer
and the multi-worker loop share ``training/step.py`` and ``training/workdir.py`` instead of importing
each other's private helpers."""
from helpers.import_graph import cycles_through, import_graph


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
