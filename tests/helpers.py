"""The comparison helpers every test uses; each prints expected, actual and the margin on failure.

The rules themselves live in theory/ground/statistics.py, shared with ``verify``.
"""
from __future__ import annotations

from simulations.statistics import Estimate
from theory.ground.statistics import IDENTITY_TOL, Z_CHECK, relative_residual

__all__ = ["IDENTITY_TOL", "assert_close", "assert_within_ci"]


def assert_close(actual, expected, tol: float = IDENTITY_TOL, what: str = "") -> None:
    """relative_residual(actual, expected) ≤ tol: max |actual − expected| ≤ tol · max |expected|."""
    residual = relative_residual(actual, expected)
    assert residual <= tol, (f"{what}: expected\n{expected}\nactual\n{actual}\n"
                             f"relative residual {residual:.3g} > {tol:.3g}")


def assert_within_ci(closed_form: float, est: Estimate, what: str = "", z: float = Z_CHECK) -> None:
    """|closed form − Monte-Carlo mean| ≤ z · stderr (Z_CHECK = 3.29: two-sided 99.9%)."""
    assert est.contains(closed_form, z), (
        f"{what}: closed form {closed_form:.6g}, simulation {est.mean:.6g} ± {z * est.stderr:.3g} "
        f"(z={z}, n={est.n}); gap {abs(closed_form - est.mean):.3g} exceeds the margin")
