"""``paper_repro.py verify``: every closed form of theory/ held against its simulation twin
(simulations.checks), as a table (``--json``: as a JSON array, one object per check; ``--output FILE``: that
array written to FILE too); the exit status is 1 when any check fails."""
from __future__ import annotations

from dataclasses import dataclass

from simulations.checks import MIN_SCALE, Check, format_checks, run_checks
from theory.ground.atomic_io import atomic_write_json
from theory.ground.errors import ParameterError, require_real
from theory.ground.options import Threads, option


@dataclass(frozen=True)
class VerifyConfig(Threads):
    """Hold every theory result against simulation; prints quantity (`<stem>.<quantity>`), theory (the closed
    form), simulation (Monte-Carlo mean, autograd or literal value, meta-trained value), pass and the rule
    (`--json`: the same table as a JSON array, one object per check; `--output FILE` writes that array to FILE
    too); exit status 1 if any check fails."""

    scale: float = option(1.0, f"multiply sample sizes and iterations (at least {MIN_SCALE}: below that "
                               "heavy-tailed estimates lose their interval's coverage)")
    output: str | None = option(None, "also write the table as JSON (an array, one object per check) to this file",
                                path="file")

    def __post_init__(self):
        super().__post_init__()
        if require_real("scale", self.scale) < MIN_SCALE:
            raise ParameterError("scale", self.scale, f"a number >= {MIN_SCALE}")


def run(config: VerifyConfig, progress: bool = False) -> list[Check]:
    """Run every check at ``config.scale``; write the JSON table if asked."""
    checks = run_checks(config.scale, progress)
    if config.output:
        atomic_write_json(config.output, json_report(checks))
    return checks


format_report = format_checks


def json_report(checks: list[Check]) -> list[dict]:
    """The table as JSON: one object per check (name, setting, theory, simulation, tolerance, passed, kind, score)."""
    return [c.as_dict() for c in checks]


def exit_status(checks: list[Check]) -> int:
    return 1 if any(not c.passed for c in checks) else 0
