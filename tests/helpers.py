"""The comparison helpers every test uses; each prints expected, actual and the margin on failure."""
from __future__ import annotations

import numpy as np

from simulations.statistics import Z_CHECK, Estimate


def assert_close(actual, expected, tol: float, what: str = "") -> None:
    """max |actual − expected| ≤ tol · max(max |expected|, 1e-300) (a relative float64 identity)."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    err = float(np.max(np.abs(actual - expected), initial=0.0))
    bound = tol * max(float(np.max(np.abs(expected), initial=0.0)), 1e-300)
    assert err <= bound, f"{what}: expected\n{expected}\nactual\n{actual}\nerror {err:.3g} > bound {bound:.3g}"


def assert_within_ci(closed_form: float, est: Estimate, what: str = "", z: float = Z_CHECK) -> None:
    """|closed form − Monte-Carlo mean| ≤ z · stderr (z = 3.29: two-sided 99.9%)."""
    margin = z * est.stderr
    gap = abs(closed_form - est.mean)
    assert gap <= margin, (f"{what}: closed form {closed_form:.6g}, simulation {est.mean:.6g} ± {margin:.3g} "
                           f"(z={z}, n={est.n}); gap {gap:.3g} exceeds the margin")
