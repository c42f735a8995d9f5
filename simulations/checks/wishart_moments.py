"""verify checks of theory.wishart_moments: Isserlis (sympy), the Wishart sandwich and trace moments (Monte-Carlo),
and Deitmar's recursion against an enumeration of Wick pairings (sympy)."""
from __future__ import annotations

import numpy as np
import sympy as sp

from simulations.checks.fixtures import random_spd
from simulations.checks.rules import Check, declare, interval_check, symbolic_check
from simulations.twins.wishart_moments import (
    estimate_isotropic_trace_moment,
    estimate_sample_moment_sandwich,
    wick_trace_moment,
)
from theory import wishart_moments


def check_fourth_moment_symbolic(scale: float) -> Check:
    derived, closed = wishart_moments.gaussian_fourth_moment_symbolic(3)
    nonzero = sum(1 for e in sp.simplify(derived - closed) if e != 0)
    return symbolic_check("d=3, symbolic Σ and A", nonzero,
                          "Isserlis − closed form")


def check_sandwich_moment(scale: float) -> Check:
    rng = np.random.default_rng(11)
    sigma, a, probe = random_spd(4, rng), rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    theory = np.trace(probe @ wishart_moments.sample_moment_sandwich(sigma, a, 3))
    est = estimate_sample_moment_sandwich(sigma, a, 3, probe, int(200_000 * scale), seed=1)
    return interval_check("d=4, K=3, random Σ, A, probe B: tr(B·E[ŜAŜ])",
                          theory, est)


def check_trace_moment(scale: float) -> Check:
    theory = float(wishart_moments.isotropic_trace_moment(3).subs({wishart_moments.d_sym: 6,
                                                                  wishart_moments.K_sym: 4}))
    est = estimate_isotropic_trace_moment(6, 4, 3, int(100_000 * scale), seed=2)
    return interval_check("Σ=I, d=6, K=4: E tr(Ŝ³) by the recursion", theory, est)


def check_trace_moment_high(scale: float) -> Check:
    theory = wishart_moments.isotropic_trace_moments(3, 8, 8)[8] * 3
    est = estimate_isotropic_trace_moment(3, 8, 8, int(100_000 * scale), seed=3)
    return interval_check("Σ=I, d=3, K=8: E tr(Ŝ⁸) by the recursion", theory, est)


def check_recursion_against_wick(scale: float) -> Check:
    nonzero = sum(1 for m in range(1, 7)
                  if sp.expand(wishart_moments.wishart_trace_moment(m) - wick_trace_moment(m)) != 0)
    return symbolic_check("E tr((XᵀX)^m), m = 1…6, polynomials in d, K",
                          nonzero, "Deitmar recursion − Wick enumeration")


CHECKS = declare("wishart_moments", {
    "fourth_moment_isserlis": check_fourth_moment_symbolic,
    "sandwich_E[SAS]": check_sandwich_moment,
    "trace_moment_m3": check_trace_moment,
    "trace_moment_m8": check_trace_moment_high,
    "recursion_vs_wick": check_recursion_against_wick,
})
