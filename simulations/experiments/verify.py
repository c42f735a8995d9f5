"""``paper_repro.py verify``: every closed form of theory/ held against its simulation twin
(simulations.checks), as a table; the exit status is 1 when any check fails."""
from __future__ import annotations

from dataclasses import dataclass

from simulations.checks import MIN_SCALE, Check, format_checks, run_checks
from theory.ground.atomic_io import atomic_write_json
from theory.ground.errors import ParameterError, require_real
from theory.ground.options import Threads, option


@dataclass(frozen=True)
class VerifyConfig(Threads):
    """How large the Monte-Carlo twins are, and where the table goes besides the terminal."""

    scale: float = option(1.0, f"multiply sample sizes and iterations (at least {MIN_SCALE}: below that "
                               "heavy-tailed estimates lose their interval's coverage)")
    json: str | None = option(None, "also write the table as JSON to this path")

    def __post_init__(self):
        super().__post_init__()
        if require_real("scale", self.scale) < MIN_SCALE:
            raise ParameterError("scale", self.scale, f"a number >= {MIN_SCALE}")


def run(config: VerifyConfig, progress: bool = False) -> list[Check]:
    """Run every check at ``config.scale``; write the JSON table if asked."""
    checks = run_checks(config.scale, progress)
    if config.json:
        atomic_write_json(config.json, [c.as_dict() for c in checks])
    return checks


format_report = format_checks


def exit_status(checks: list[Check]) -> int:
    return 1 if any(not c.passed for c in checks) else 0
