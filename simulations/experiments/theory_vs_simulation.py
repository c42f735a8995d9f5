"""Figure 4's numbers: every verify check (simulations.checks), one unit each, at a sample-size scale.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from simulations.checks import CHECKS, Declared


@dataclass(frozen=True)
class Settings:
    """Figure 4's setting: the checks' sample-size scale."""

    scale: float = 0.3  # fraction of verify's sample sizes and iterations (quick profile)


def _check(check: Declared, scale: float) -> dict:
    """Unit: one verify check at ``scale``, as its record."""
    return check(scale).as_dict()


def units(config: Settings, seed: int = 0) -> dict[str, Callable[[], dict]]:
    """One unit per verify check, keyed by its name ``<stem>.<quantity>`` (``seed`` is unused: the checks
    use their own fixed seeds). Checks that share a cached meta-training recompute it when they run in
    different processes; the seeds make both computations the same."""
    return {check.name: partial(_check, check, config.scale) for check in CHECKS}


def assemble(config: Settings, seed: int, done: dict[str, dict]) -> dict:
    return {"checks": [done[key] for key in units(config, seed)]}
