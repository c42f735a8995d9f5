"""Every theory result held against its simulation twin: the checks behind ``paper_repro.py verify``.

One module per theory stem (simulations/checks/<stem>.py beside theory/<stem>.py), each declaring its
checks as data: ``CHECKS = declare("<stem>", {"<quantity>": compute, …})``, so every check has one name,
``<stem>.<quantity>``: verify's row, figure 4's unit key and row, and the pytest id. The rules, all in
simulations/checks/rules.py: a closed form inside the Monte-Carlo interval (|theory − mean| ≤ Z_CHECK·se,
or with both standard errors where the theory is Monte-Carlo too), a float64 or sympy identity, a
meta-trained optimum near its prediction, or a bound. ``scale`` multiplies sample sizes and iterations (at
least MIN_SCALE). Fixtures several check modules use live in simulations/checks/fixtures.py.
"""
from __future__ import annotations

from simulations.checks import (
    anil_width,
    bayes_floor,
    deep_linear,
    depth2_maml,
    dynamics,
    finite_tasks,
    fixed_points,
    linear_attention,
    logistic,
    meta_sgd,
    preconditioned_maml,
    ridge_maml,
    scalar_deep,
    shallow_maml,
    wishart_moments,
    wishart_words,
)
from simulations.checks.rules import Check, Declared

__all__ = ["CHECKS", "MIN_SCALE", "REGISTRY", "Check", "format_checks", "run_checks"]

REGISTRY: dict[str, list[Declared]] = {
    module.__name__.rsplit(".", 1)[1]: module.CHECKS
    for module in (wishart_moments, shallow_maml, preconditioned_maml, deep_linear, depth2_maml, logistic, scalar_deep,
                   bayes_floor, wishart_words, anil_width, finite_tasks, fixed_points, dynamics, linear_attention,
                   meta_sgd, ridge_maml)
}  # theory stem -> its checks
CHECKS: list[Declared] = [check for checks in REGISTRY.values() for check in checks]
MIN_SCALE = 0.3  # below this, heavy-tailed Monte-Carlo estimates lose their interval's coverage


def run_checks(scale: float = 1.0, progress: bool = False, stems=None) -> list[Check]:
    """Run every check (or those of the given theory stems); ``scale`` multiplies sample sizes and iterations."""
    from tqdm.auto import tqdm

    chosen = [(stem, check) for stem in (stems or REGISTRY) for check in REGISTRY[stem]]
    return [check(scale) for _, check in tqdm(chosen, desc="verify", disable=None if progress else True, leave=False)]


def format_checks(checks: list[Check]) -> str:
    """The verify table: quantity, theory, simulation, pass, setting and rule; then the pass count."""
    width = max(len(c.name) for c in checks)
    lines = [f"{'quantity':{width}}  {'theory':>12}  {'simulation':>12}  pass  setting; rule"]
    lines += [f"{c.name:{width}}  {c.theory:12.6g}  {c.simulation:12.6g}  {'yes' if c.passed else 'NO ':4}"
              f"  {c.setting}; {c.tolerance}" for c in checks]
    failed = sum(not c.passed for c in checks)
    lines.append(f"{len(checks) - failed} passed, {failed} failed")
    return "\n".join(lines)
