"""Run code around the first import of a module, without importing it now (standard library only).

Used by ``import rsn_tf`` (register the Keras classes right after ``keras`` is imported) and by the
``rsn`` CLI (import ``tensorflow`` with its start-up chatter filtered), so that neither imports the
heavy package for work that never needs it.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from typing import Callable


class _AroundImport(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, around: Callable):
        self.name, self.around = name, around

    def find_spec(self, name, path=None, target=None):
        if name != self.name:
            return None
        sys.meta_path.remove(self)  # once; and the real finders answer the lookup below
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module
        spec.loader.exec_module = lambda module: self.around(exec_module, module)
        return spec


def around_first_import(name: str, around: Callable) -> bool:
    """Make the first ``import name`` run as ``around(exec_module, module)`` (``around`` must call
    ``exec_module(module)``). Returns False, arranging nothing, if ``name`` is already imported; a
    second call with the same ``name`` and ``around`` while the first is pending adds nothing."""
    if name in sys.modules:
        return False
    if not any(isinstance(f, _AroundImport) and f.name == name and f.around is around for f in sys.meta_path):
        sys.meta_path.insert(0, _AroundImport(name, around))
    return True
