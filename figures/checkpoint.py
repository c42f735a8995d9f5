"""Resumable figure computations: each unit of work (one meta-training run) is saved when done.

``UnitCheckpoint`` keeps finished units in ``<out>/.figN_name.partial.json`` (written atomically
after every unit) under a signature of the figure, profile, seed and config; a rerun with the
same signature skips them, so an interrupted ``--full`` run resumes where it stopped. The file
is removed once the figure is complete. ``run_unit`` is what compute functions call.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from simulations.atomic_io import atomic_write_json


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
            self.done[key] = compute()
            atomic_write_json(self.path, {"signature": self.signature, "units": self.done})
        if self.bar is not None:
            self.bar.update(1)
        return self.done[key]

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
