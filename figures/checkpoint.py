"""Resumable figure computations: each unit of work (one meta-training run) is saved when done.

``UnitCheckpoint`` keeps finished units in ``<out>/.figN_name.partial.json`` (written atomically
after every unit) under a signature of the figure, profile, seed and config; a rerun with the
same signature skips them, so an interrupted ``--full`` run resumes where it stopped. The file
is removed once the figure is complete. ``run_unit`` runs one unit through it; ``run_units`` runs a
figure's units in order (figures.registry.compute: a figure's serial computation).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from theory.ground.atomic_io import atomic_write_json


class UnitCheckpoint:
    """Finished units of one figure's compute, persisted after each (see module doc)."""

    def __init__(self, path: Path, signature: dict, bar=None):
        self.path, self.signature, self.bar = Path(path), signature, bar
        self.done: dict = {}
        if self.path.exists():
            try:
                saved = json.loads(self.path.read_text())
            except (OSError, ValueError):
                saved = {}
            if saved.get("signature") == signature:
                self.done = saved.get("units", {})

    def run(self, key: str, compute: Callable[[], object]):
        """The unit's result: from the checkpoint if finished before, else computed and saved now."""
        if key not in self.done:
            self.save(key, compute())
        if self.bar is not None:
            self.bar.update(1)
        return self.done[key]

    def save(self, key: str, value) -> None:
        """Record a finished unit and rewrite the checkpoint file (atomically)."""
        self.done[key] = value
        atomic_write_json(self.path, {"signature": self.signature, "units": self.done})

    def update(self, n: int = 1) -> None:
        """Tick the progress bar for work that is not checkpointed (cheap units)."""
        if self.bar is not None:
            self.bar.update(n)

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)


def run_unit(progress, key: str, compute: Callable[[], object]):
    """Run one unit through a UnitCheckpoint if given, else directly (ticking a tqdm bar if given)."""
    if isinstance(progress, UnitCheckpoint):
        return progress.run(key, compute)
    value = compute()
    if progress is not None:
        progress.update(1)
    return value


def run_units(progress, units: dict[str, Callable[[], object]]) -> dict[str, object]:
    """Every unit of a figure, in order, through ``run_unit``: key -> its result (a module's serial compute)."""
    return {key: run_unit(progress, key, compute) for key, compute in units.items()}
