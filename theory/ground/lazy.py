"""sympy, imported on first use: the numeric closed forms (explore --theory-only, the figures' theory) never need
it, and importing it costs about 0.2 s of a command whose goal is 1 s (issue 20). ``sp.X`` anywhere imports it."""
from __future__ import annotations

import importlib
import sys


class _Lazy:
    """A module imported at its first attribute access (then every access is the module's own)."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)


sp = _Lazy("sympy")


def is_symbolic(value) -> bool:
    """Whether ``value`` is a sympy object, without importing sympy (a sympy object means it is imported)."""
    return "sympy" in sys.modules and isinstance(value, sys.modules["sympy"].Basic)
