"""Shared figure plumbing: seed-level summaries, CSV rows, the theory reference levels, and atomic PDF/PNG output."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import ClassVar

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from theory.ground.atomic_io import atomic_write_bytes, atomic_write_text
from theory.shallow_maml import REFERENCE_LOSSES


class Profiles:
    """The two profiles of a figure's frozen Config: ``quick()`` = its defaults (the main job's
    budget), ``full()`` = the defaults overridden by the class's FULL dict (paper-grade)."""

    FULL: ClassVar[dict] = {}

    @classmethod
    def quick(cls):
        return cls()

    @classmethod
    def full(cls):
        return cls(**cls.FULL)


COLORS = {"shallow": "#000000", "deep": "#d62728", "linnet": "#1f77b4", "kfo": "#2ca02c",
          "logr": "#000000", "logr+linnet": "#1f77b4", "logr+kfo": "#2ca02c", "theory": "#7f7f7f"}

# The three theory levels (theory.shallow_maml.reference_losses), drawn the same way in every figure:
# one label, one line style and one colour per level (none of them a model's colour in COLORS).
REFERENCE_STYLE = {
    "pre_adaptation_loss": {"label": "pre-adaptation (theory, θ = μ)", "color": "#7f7f7f", "linestyle": ":"},
    "shallow_best_post_loss": {"label": "best shallow step (theory)", "color": "#8c564b", "linestyle": "--"},
    "preconditioned_best_post_loss": {"label": "optimal preconditioner (theory)", "color": "#9467bd",
                                      "linestyle": "-."},
}
REFERENCE_LINEWIDTH = 1.3


def draw_reference_losses(ax, levels: dict, keys=REFERENCE_LOSSES, with_values: bool = False) -> list:
    """Horizontal lines at the theory levels ``levels[key]`` for each key, styled by REFERENCE_STYLE (the
    label followed by ": value" with ``with_values``); returns the lines."""
    lines = []
    for key in keys:
        style = REFERENCE_STYLE[key]
        label = f"{style['label']}: {levels[key]:.3f}" if with_values else style["label"]
        lines.append(ax.axhline(levels[key], linewidth=REFERENCE_LINEWIDTH, **(style | {"label": label})))
    return lines


def write_csv(path: Path, rows: list[dict]) -> Path:
    """Rows (dicts with the same keys) as CSV, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


def save_figure(fig, stem: Path) -> list[Path]:
    """Save ``fig`` as stem.pdf and stem.png (atomically) and close it."""
    paths = []
    # no creation date in the PDF: the same figure writes the same bytes
    for ext, kwargs in (("pdf", {"metadata": {"CreationDate": None}}), ("png", {"dpi": 150})):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=ext, bbox_inches="tight", **kwargs)
        paths.append(atomic_write_bytes(stem.with_suffix(f".{ext}"), buffer.getvalue()))
    plt.close(fig)
    return paths
