"""``paper_repro.py formulas``: every derived formula of theory/ as LaTeX in Markdown (theory.latex)."""
from __future__ import annotations

from dataclasses import dataclass

from theory.ground.atomic_io import atomic_write_text
from theory.ground.options import option


@dataclass(frozen=True)
class FormulasConfig:
    """Every derived formula as LaTeX (Markdown), to the terminal or, with `--output FILE`, to a file."""

    output: str | None = option(None, "write the Markdown to this file instead of the terminal", path="file")


def run(config: FormulasConfig, progress: bool = False) -> str:
    """The Markdown, written to ``config.output`` if given; returns what the terminal should show."""
    from theory.latex import markdown

    text = markdown()
    if config.output:
        atomic_write_text(config.output, text)
        return ""
    return text


def format_report(text: str) -> str:
    return text.removesuffix("\n")
