"""The paper's settings, declared once and imported wherever they are used (figures 1 and 5, explore).

PAPER is the failure mode's linear-regression setting (Arnold, Iqbal & Sha's figure 1 regime): d = 50 inputs,
K = 5 support and Q = 20 query points, tasks on a random rank-2 subspace; explore's defaults and figure 1
use it. CLASSIFICATION_ALPHA is the inner step for the logistic loss, where no closed form picks one.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LinearSetting:
    """A linear-regression task family's dimensions (theory.task_family.LinearTaskFamily.subspace)."""

    dim: int  # d
    support: int  # K
    query: int  # Q
    rank: int  # r: the task subspace's rank


PAPER = LinearSetting(dim=50, support=5, query=20, rank=2)  # d ≫ K: the regime where the shallow model fails
CLASSIFICATION_ALPHA = 0.5  # logistic loss: at 0.5 one LogR step still lowers the query loss (at 2.0 it raises
# it), so the logistic-regression baseline is not handicapped
