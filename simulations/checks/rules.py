"""A verified quantity (``Check``), the constructors for each kind of rule, and checks as declared data.

Every check reports the closed form under ``theory`` and the Monte-Carlo, autograd or literal
value under ``simulation``; ``score`` is the deviation in units of what the rule allows, so
``passed`` ⇔ ``score`` ≤ 1. Every comparison rule of ``verify`` is here, no check module has its own;
the numbers of the rules (Z_CHECK, IDENTITY_TOL, the relative residual) are those of the ground floor
(theory.ground.statistics), which the tests use too.

A check module declares its checks as data: ``CHECKS = declare("<stem>", {"<quantity>": compute, …})``.
The one name ``<stem>.<quantity>`` is verify's row, figure 4's unit key and row, and the pytest id;
``compute(scale)`` builds the Check without a name, and the declaration stamps it.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from simulations.statistics import Estimate
from theory.ground.statistics import IDENTITY_TOL, Z_CHECK, relative_residual

KINDS = ("interval", "identity", "optimum", "bound")


@dataclass(frozen=True)
class Check:
    """One verified quantity: closed form against simulation."""

    name: str  # "<stem>.<quantity>", the stem of theory/<stem>.py (stamped by its declaration)
    setting: str
    theory: float  # the closed form (or the derived symbolic value)
    simulation: float  # the Monte-Carlo mean, the autograd/literal value, the meta-trained value
    tolerance: str  # the rule, with its numbers
    passed: bool
    kind: str  # one of KINDS
    score: float  # deviation in units of what the rule allows: passed ⇔ score ≤ 1

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"check kind {self.kind!r} is not one of {KINDS}")

    def as_dict(self) -> dict:
        return asdict(self)


def interval_check(setting: str, theory: float, est: Estimate) -> Check:
    """The closed form lies within Z_CHECK standard errors of the Monte-Carlo mean."""
    score = est.score(theory)
    return Check("", setting, float(theory), est.mean, f"±{Z_CHECK * est.stderr:.3g} ({Z_CHECK:g} se, n={est.n})",
                 bool(score <= 1), "interval", score)


def identity_check(setting: str, closed, literal, tol: float = IDENTITY_TOL) -> Check:
    """A float64 identity: relative_residual(closed, literal) ≤ tol; reports the norms of both."""
    residual = relative_residual(closed, literal)
    return Check("", setting, _norm(closed), _norm(literal), f"max rel. residual {residual:.1e} ≤ {tol:g}",
                 bool(residual <= tol), "identity", residual / tol)


def symbolic_check(setting: str, nonzero: int, what: str) -> Check:
    """A sympy identity: ``nonzero`` entries of (derived − closed form) fail to simplify to 0; must be 0."""
    return Check("", setting, 0.0, float(nonzero), f"entries of ({what}) not simplifying to 0: must be 0",
                 nonzero == 0, "identity", float(nonzero))


def optimum_check(setting: str, theory: float, simulation: float, error: float, allowed: float,
                  rule: str) -> Check:
    """A meta-trained optimum near its prediction: ``error`` (as ``rule`` defines it) ≤ ``allowed``."""
    return Check("", setting, float(theory), float(simulation), f"{rule} ≤ {allowed:g}", bool(error <= allowed),
                 "optimum", error / allowed)


def _norm(value) -> float:
    return float(np.linalg.norm(np.asarray(value, dtype=float)))


def upper_bound_check(setting: str, bound: float, est: Estimate, what: str) -> Check:
    """The Monte-Carlo mean plus Z_CHECK standard errors lies strictly below ``bound`` (a theory level)."""
    upper = est.mean + Z_CHECK * est.stderr
    return Check("", setting, float(bound), est.mean, f"{what} mean + {Z_CHECK:g} se = {upper:.4g} < {bound:.4g}",
                 bool(upper < bound), "bound", upper / bound)


def two_estimate_check(setting: str, theory: float, theory_stderr: float, theory_method: str, est: Estimate) -> Check:
    """A theory value that is itself a Monte-Carlo estimate (standard error ``theory_stderr``; 0 when exact or by
    quadrature) against an independent twin: |theory − twin mean| ≤ Z_CHECK · √(se_twin² + se_theory²)."""
    combined = Estimate(est.mean, math.hypot(est.stderr, theory_stderr), est.n)
    score = combined.score(theory)
    what = "combined se" if theory_stderr > 0 else "se"
    return Check("", setting, float(theory), est.mean,
                 f"±{Z_CHECK * combined.stderr:.3g} ({Z_CHECK:g} {what}, twin n={est.n}, theory {theory_method})",
                 bool(score <= 1), "interval", score)


def zero_gap_check(setting: str, theory: float, est: Estimate, scale: float) -> Check:
    """An exact theory value met by the twin up to rounding: |twin mean − theory| ≤ IDENTITY_TOL · ``scale`` (an
    identity on the loss scale ``scale``)."""
    ratio = abs(est.mean - theory) / scale
    return Check("", setting, float(theory), est.mean,
                 f"|gap| over the loss scale {scale:.3g}: max rel. residual {ratio:.1e} ≤ {IDENTITY_TOL:g}",
                 bool(ratio <= IDENTITY_TOL), "identity", ratio / IDENTITY_TOL)


def runs_optimum_check(setting: str, theory: float, mean: float, stderr: float, runs: int) -> Check:
    """A meta-trained optimum over ``runs`` independent runs: |mean − θ*|/|θ*| ≤ t_{runs−1}(99.95%)·se/|θ*| (the
    two-sided 99.9% Student-t interval over runs; relative to |θ*|, or absolute when θ* = 0)."""
    unit = abs(theory) if theory != 0 else 1.0
    allowed = stats.t.ppf(0.9995, runs - 1) * stderr / unit
    return optimum_check(setting, theory, mean, abs(mean - theory) / unit, allowed,
                         f"|θ − θ*|/|θ*| vs t_{runs - 1}(99.95%)·se/|θ*| over runs")


@dataclass(frozen=True)
class Declared:
    """One verify check as data: its name ``<stem>.<quantity>`` and ``compute(scale) -> Check``."""

    name: str
    compute: Callable[[float], Check]

    def __call__(self, scale: float) -> Check:
        return dataclasses.replace(self.compute(scale), name=self.name)


def declare(stem: str, checks: dict[str, Callable[[float], Check]]) -> list[Declared]:
    """A check module's checks, named ``<stem>.<quantity>`` in the given order."""
    return [Declared(f"{stem}.{quantity}", compute) for quantity, compute in checks.items()]
