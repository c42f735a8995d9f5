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
GROUND = {"ground", "latex", "task_family", "structured_family"}  # not results (theory/__init__.py)
STEMS = sorted(m.name for m in pkgutil.iter_modules(theory.__path__) if m.name not in GROUND)


def test_the_stems_are_the_documented_ones():
    assert STEMS == ["anil_width", "bayes_floor", "deep_linear", "depth2_maml", "dynamics", "finite_tasks",
                     "fixed_points", "linear_attention",
                     "logistic", "meta_sgd", "preconditioned_maml", "ridge_maml", "scalar_deep", "shallow_maml",
                     "wishart_moments", "wishart_words"]


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


# -- imports go one way ---------------------------------------------------------------------------------
# ground ← theory ← engine ← twins ← checks ← experiments ← figures ← command line (theory/ground/__init__.py)
LAYERS = ["theory.ground", "theory", "simulations", "simulations.twins", "simulations.checks",
          "simulations.experiments", "figures", "command line"]


def _layer(module: str) -> int | None:
    """The floor of a module of the project (None for the tests and outside modules): its longest layer prefix."""
    if module == "paper_repro" or module.startswith("scripts"):
        return LAYERS.index("command line")
    matches = [i for i, name in enumerate(LAYERS) if module == name or module.startswith(name + ".")]
    return max(matches, key=lambda i: len(LAYERS[i])) if matches else None


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) of every import of the project's own modules in ``path``, lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.module, node.lineno)]
            found += [(f"{node.module}.{a.name}", node.lineno) for a in node.names
                      if (ROOT / Path(*node.module.split("."), f"{a.name}.py")).exists()
                      or (ROOT / Path(*node.module.split("."), a.name)).is_dir()]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
    return [(m, line) for m, line in found if _layer(m) is not None]


def _upward(path: Path, module: str) -> list[str]:
    """The imports in ``path`` (the source of ``module``) from a floor above the module's own."""
    here = _layer(module)
    return [f"{module} ({LAYERS[here]}) imports {target} ({LAYERS[_layer(target)]}), line {line}"
            for target, line in _imports(path) if _layer(target) > here]


def test_imports_go_one_way():
    """No module imports from a floor above its own (lazy imports inside functions included)."""
    sources = [*(ROOT / "theory").rglob("*.py"), *(ROOT / "simulations").rglob("*.py"),
               *(ROOT / "figures").rglob("*.py"), ROOT / "paper_repro.py", *(ROOT / "scripts").glob("*.py")]
    assert len(sources) > 80
    offenders = [line for path in sources for line in _upward(
        path, ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"))]
    assert not offenders, "\n".join(offenders)


def test_the_import_check_catches_an_upward_import(tmp_path):
    """The check fails on an arrow the wrong way: a checks module importing an experiment, as one did."""
    probe = tmp_path / "probe.py"
    probe.write_text("import torch\nfrom simulations.experiments.finite_tasks import FiniteTasksConfig\n"
                     "from simulations.twins import shallow_maml\n", encoding="utf-8")
    assert _upward(probe, "simulations.checks.probe") == [
        "simulations.checks.probe (simulations.checks) imports simulations.experiments.finite_tasks "
        "(simulations.experiments), line 2"]
    assert _upward(probe, "simulations.experiments.probe") == []
    assert len(_upward(probe, "theory.ground.probe")) == 3  # the experiment, the twins package and its module


def test_check_modules_share_only_the_rules_and_the_fixtures():
    """A check module imports no other check module (they once borrowed each other's fixtures): only
    simulations.checks.rules and simulations.checks.fixtures."""
    shared = {"simulations.checks.rules", "simulations.checks.fixtures"}
    for path in (ROOT / "simulations" / "checks").glob("*.py"):
        if path.stem in ("__init__", "rules", "fixtures"):
            continue
        borrowed = {m for m, _ in _imports(path) if m.startswith("simulations.checks.")} - shared
        assert not borrowed, f"{path.name} imports {sorted(borrowed)}"
