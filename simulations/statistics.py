"""Monte-Carlo estimates with standard errors (on torch); the constants and comparison rules they are held to
live at the ground floor (theory.ground.statistics)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from theory.ground.statistics import Z_CHECK, Z_REPORT


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


def mean_ci95(samples, level: float = 0.95) -> tuple[float, float]:
    """Mean over seeds and the half-width of its Student-t interval at ``level`` (two-sided; 95% unless a
    multiple comparison asks for more; 0 for one seed)."""
    x = np.asarray(samples, float)
    if x.size < 2:
        return float(x.mean()), 0.0
    quantile = stats.t.ppf(0.5 + level / 2, x.size - 1)
    return float(x.mean()), float(quantile * x.std(ddof=1) / np.sqrt(x.size))
