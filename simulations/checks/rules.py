"""A verified quantity (``Check``) and the constructors for each kind of rule.

Every check reports the closed form under ``theory`` and the Monte-Carlo, autograd or literal
value under ``simulation``; ``score`` is the deviation in units of what the rule allows, so
``passed`` ⇔ ``score`` ≤ 1. The numbers of the rules (Z_CHECK, IDENTITY_TOL, the relative
residual) are those of simulations/statistics.py, which the tests use too.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from simulations.statistics import Estimate
from theory.ground.statistics import IDENTITY_TOL, Z_CHECK, relative_residual

KINDS = ("interval", "identity", "optimum", "bound")


@dataclass(frozen=True)
class Check:
    """One verified quantity: closed form against simulation."""

    name: str  # "<stem>.<quantity>", the stem of theory/<stem>.py
    setting: str
    theory: float  # the closed form (or the derived symbolic value)
    simulation: float  # the Monte-Carlo mean, the autograd/literal value, the meta-trained value
    tolerance: str  # the rule, with its numbers
    passed: bool
    kind: str  # one of KINDS
    score: float  # deviation in units of what the rule allows: passed ⇔ score ≤ 1

    def as_dict(self) -> dict:
        return asdict(self)


def interval_check(name: str, setting: str, theory: float, est: Estimate) -> Check:
    """The closed form lies within Z_CHECK standard errors of the Monte-Carlo mean."""
    score = est.score(theory)
    return Check(name, setting, float(theory), est.mean, f"±{Z_CHECK * est.stderr:.3g} ({Z_CHECK:g} se, n={est.n})",
                 bool(score <= 1), "interval", score)


def identity_check(name: str, setting: str, closed, literal, tol: float = IDENTITY_TOL) -> Check:
    """A float64 identity: relative_residual(closed, literal) ≤ tol; reports the norms of both."""
    residual = relative_residual(closed, literal)
    return Check(name, setting, _norm(closed), _norm(literal), f"max rel. residual {residual:.1e} ≤ {tol:g}",
                 bool(residual <= tol), "identity", residual / tol)


def symbolic_check(name: str, setting: str, nonzero: int, what: str) -> Check:
    """A sympy identity: ``nonzero`` entries of (derived − closed form) fail to simplify to 0; must be 0."""
    return Check(name, setting, 0.0, float(nonzero), f"entries of ({what}) not simplifying to 0: must be 0",
                 nonzero == 0, "identity", float(nonzero))


def optimum_check(name: str, setting: str, theory: float, simulation: float, error: float, allowed: float,
                  rule: str) -> Check:
    """A meta-trained optimum near its prediction: ``error`` (as ``rule`` defines it) ≤ ``allowed``."""
    return Check(name, setting, float(theory), float(simulation), f"{rule} ≤ {allowed:g}", bool(error <= allowed),
                 "optimum", error / allowed)


def _norm(value) -> float:
    return float(np.linalg.norm(np.asarray(value, dtype=float)))


def upper_bound_check(name: str, setting: str, bound: float, est: Estimate, what: str) -> Check:
    """The Monte-Carlo mean plus Z_CHECK standard errors lies strictly below ``bound`` (a theory level)."""
    upper = est.mean + Z_CHECK * est.stderr
    return Check(name, setting, float(bound), est.mean, f"{what} mean + {Z_CHECK:g} se = {upper:.4g} < {bound:.4g}",
                 bool(upper < bound), "bound", upper / bound)
