"""The statistics constants and the comparison rules every check uses, defined once.

* interval: a closed form passes against an estimate when |closed − mean| ≤ Z_CHECK · stderr,
  Z_CHECK = 3.29 (two-sided 99.9%); reported intervals are 95% (Z_REPORT = 1.96);
* identity: max |actual − expected| ≤ tol · max |expected| (``relative_residual`` ≤ tol), with
  IDENTITY_TOL = 1e-10 for float64 identities (sympy or closed form against autograd).

The Monte-Carlo estimate with its standard error is simulations.statistics.Estimate (on torch);
``verify`` (simulations/checks/rules.py) and the tests (tests/helpers.py) apply these rules to it.
"""
from __future__ import annotations

import numpy as np

Z_CHECK = 3.29  # two-sided 99.9%: a correct closed form fails about once in a thousand seeds
Z_REPORT = 1.96  # two-sided 95%, for reported intervals
IDENTITY_TOL = 1e-10  # float64 identities: a few hundred ulps of accumulated rounding, far below any real error


def relative_residual(actual, expected) -> float:
    """max |actual − expected| / max |expected| (over all entries; the denominator floored at 1e-300)."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    if actual.shape != expected.shape:
        raise ValueError(f"shapes differ: {actual.shape} and {expected.shape}")
    err = float(np.max(np.abs(actual - expected), initial=0.0))
    return err / max(float(np.max(np.abs(expected), initial=0.0)), 1e-300)
