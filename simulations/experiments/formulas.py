"""``paper_repro.py formulas``: every derived formula of theory/ as LaTeX in Markdown (theory.latex)."""
from __future__ import annotations

from dataclasses import dataclass

from theory.ground.atomic_io import atomic_write_text
from theory.ground.options import option


@dataclass(frozen=True)
class FormulasConfig:
    out: str | None = option(None, "write the Markdown to this file instead of the terminal")


def run(config: FormulasConfig, progress: bool = False) -> str:
    """The Markdown, written to ``config.out`` if given; returns what the terminal should show."""
    from theory.latex import markdown

    text = markdown()
    if config.out:
        atomic_write_text(config.out, text)
        return ""
    return text


def format_report(text: str) -> str:
    return text.removesuffix("\n")
