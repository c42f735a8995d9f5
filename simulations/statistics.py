"""Monte-Carlo estimates with standard errors, and the one comparison rule used everywhere.

A closed form passes against an estimate when |closed − mean| ≤ z · stderr, with z = 3.29
(two-sided 99.9%) by default; reported intervals are 95% (z = 1.96).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

Z_CHECK = 3.29  # two-sided 99.9%: a correct closed form fails about once in a thousand seeds
Z_REPORT = 1.96  # two-sided 95%, for reported intervals


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
        return abs(value - self.mean) <= z * self.stderr

    def as_dict(self) -> dict:
        return {"mean": self.mean, "stderr": self.stderr, "ci95": self.ci95, "n": self.n}

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.ci95:.2g}"
