"""Monte-Carlo estimates with standard errors, and the one comparison rule used everywhere.

Both rules are defined here once; ``verify`` (simulations/checks) and the tests (tests/helpers.py) use them:

* interval: a closed form passes against an estimate when |closed − mean| ≤ Z_CHECK · stderr,
  Z_CHECK = 3.29 (two-sided 99.9%); reported intervals are 95% (z = 1.96);
* identity: max |actual − expected| ≤ tol · max |expected| (``relative_residual`` ≤ tol), with
  IDENTITY_TOL = 1e-10 for float64 identities (sympy or closed form against autograd).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

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


@dataclass(frozen=True)
class Estimate:
    """A Monte-Carlo mean with its standard error over n independent samples."""

    mean: float
    stderr: float
    n: int

    @classmethod
    def from_samples(cls, samples) -> Estimate:
        """Mean and standard error (unbiased variance) of iid samples; non-finite samples raise."""
        x = torch.as_tensor(samples, dtype=torch.float64).flatten()
        if not torch.isfinite(x).all():
            raise FloatingPointError("non-finite samples: the simulation diverged")
        n = x.numel()
        std = x.std(unbiased=True).item() if n > 1 else float("inf")
        return cls(x.mean().item(), std / math.sqrt(n), n)

    @property
    def ci95(self) -> float:
        """Half-width of the 95% interval."""
        return Z_REPORT * self.stderr

    def contains(self, value: float, z: float = Z_CHECK) -> bool:
        """Whether ``value`` lies within z standard errors of the mean."""
        return self.score(value, z) <= 1

    def score(self, value: float, z: float = Z_CHECK) -> float:
        """|value − mean| / (z · stderr): the deviation in units of what the interval allows (≤ 1 passes)."""
        gap = abs(value - self.mean)
        return gap / (z * self.stderr) if self.stderr > 0 else (0.0 if gap == 0 else float("inf"))

    def as_dict(self) -> dict:
        return {"mean": self.mean, "stderr": self.stderr, "ci95": self.ci95, "n": self.n}

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.ci95:.2g}"
