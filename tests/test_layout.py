"""The layout promise of theory/__init__.py: every theory stem has a twin module, verify checks named
after it, and a test module of the same name; no module imports another module's private names."""
from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import theory
from simulations.checks import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
GROUND = {"errors", "latex", "task_family"}  # theory modules that are not results (see theory/__init__.py)
STEMS = sorted(m.name for m in pkgutil.iter_modules(theory.__path__) if m.name not in GROUND)


def test_the_stems_are_the_documented_ones():
    assert STEMS == ["anil_width", "bayes_floor", "deep_linear", "finite_tasks", "fixed_points", "logistic",
                     "preconditioned_maml", "scalar_deep", "shallow_maml", "wishart_moments", "wishart_words"]


@pytest.mark.parametrize("stem", STEMS)
def test_every_stem_has_a_twin_checks_and_tests(stem):
    twins = importlib.import_module(f"simulations.twins.{stem}")
    assert [name for name in dir(twins) if not name.startswith("_") and callable(getattr(twins, name))
            and getattr(getattr(twins, name), "__module__", None) == twins.__name__], f"no twin in {stem}"
    assert REGISTRY[stem], f"no verify check for {stem}"  # each named <stem>.<quantity>: test_<stem>.py runs them
    test_module = (ROOT / "tests" / f"test_{stem}.py").read_text(encoding="utf-8")
    assert f'REGISTRY["{stem}"]' in test_module, f"tests/test_{stem}.py does not run the {stem} verify checks"


def _imported_private_names(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in (
                "theory", "simulations", "figures", "tests"):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    return found


def test_no_module_imports_private_names():
    sources = [p for folder in ("theory", "simulations", "figures", "tests") for p in (ROOT / folder).rglob("*.py")]
    offenders = {str(p.relative_to(ROOT)): names for p in sources if (names := _imported_private_names(p))}
    assert not offenders, offenders
