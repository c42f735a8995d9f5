"""The figure registry: number -> module with Config (quick/full), compute, rows, plot, caption.

``run_figure`` writes, under the output folder, figN_name.{json,csv,pdf,png}: the JSON holds
the config, seed, library versions, git commit and the full results (so --replot needs no
recomputation); the CSV the plotted numbers with their intervals. ``FiguresConfig`` declares the
options of ``paper_repro.py figures`` (the default command); ``run`` and ``format_report`` are the command.
"""
from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from figures import (
    fig1_failure_mode,
    fig2_loss_surface,
    fig3_depth_width,
    fig4_theory_vs_simulation,
    fig5_remedies,
    fig6_phase_diagram,
    fig7_vision,
    fig8_many_steps,
)
from figures.checkpoint import UnitCheckpoint
from figures.common import save_figure, write_csv
from simulations.atomic_io import atomic_write_json
from simulations.options import Threads, flags, option
from theory.errors import ParameterError, UsageError, require_int

FIGURES = {1: ("failure_mode", fig1_failure_mode), 2: ("loss_surface", fig2_loss_surface),
           3: ("depth_width", fig3_depth_width), 4: ("theory_vs_simulation", fig4_theory_vs_simulation),
           5: ("remedies", fig5_remedies),
           6: ("phase_diagram", fig6_phase_diagram), 7: ("vision", fig7_vision), 8: ("many_steps", fig8_many_steps)}


def provenance() -> dict:
    """Library versions and the git commit the figure was made from."""
    import matplotlib
    import numpy
    import scipy
    import sympy
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__, "sympy": sympy.__version__, "matplotlib": matplotlib.__version__,
            "git_commit": commit}


def run_figure(number: int, out: str = "figures/generated", full: bool = False, seed: int = 0,
               replot: bool = False, data_root: str | None = None) -> list[Path]:
    """Compute (or reload) figure ``number`` and write its JSON, CSV, PDF and PNG; returns the paths."""
    name, module = FIGURES[number]
    stem = Path(out) / f"fig{number}_{name}"
    json_path = stem.with_suffix(".json")
    if replot:
        if not json_path.exists():
            raise FileNotFoundError(f"no cached results at {json_path}; run without --replot first")
        record = json.loads(json_path.read_text())
    else:
        config = module.Config.full() if full else module.Config.quick()
        if data_root is not None and hasattr(config, "data_root"):  # figures on real data sets
            config = dataclasses.replace(config, data_root=data_root)
        signature = {"figure": number, "seed": seed, "config": json.loads(json.dumps(dataclasses.asdict(config)))}
        with tqdm(total=module.n_units(config), desc=f"figure {number}", leave=False, disable=None) as bar:
            checkpoint = UnitCheckpoint(Path(out) / f".fig{number}_{name}.partial.json", signature, bar)
            results = module.compute(config, seed=seed, progress=checkpoint)
        record = {"figure": number, "name": name, "profile": "full" if full else "quick", "seed": seed,
                  "config": dataclasses.asdict(config), "provenance": provenance(), "results": results,
                  "caption": module.caption(results)}
        atomic_write_json(json_path, record)
        write_csv(stem.with_suffix(".csv"), module.rows(results))
        checkpoint.finish()
    paths = save_figure(module.plot(record["results"]), stem)
    return [json_path, stem.with_suffix(".csv"), *paths]


@dataclass(frozen=True)
class FiguresConfig(Threads):
    """Which figures to make, from which profile, and where they go."""

    full: bool = option(False, "paper-grade seeds and iterations (slow; figure 7's full profile wants a GPU)")
    only: tuple[int, ...] | None = option(None, "figure numbers to make, e.g. 1,4 (all when not given)",
                                          choices=sorted(FIGURES))
    seed: int = option(0, "base seed: the same seed writes the same CSVs")
    out: str = option("figures/generated", "output folder for the figures and their data")
    replot: bool = option(False, "re-plot from the cached JSON results instead of computing them")
    data_root: str | None = option(None, "folder with Omniglot, CIFAR-FS and mini-ImageNet for figure 7 "
                                         "(digits, always drawn, needs none)")

    def __post_init__(self):
        super().__post_init__()
        require_int("seed", self.seed, 0, 2**31 - 1)
        if self.only is not None and (not self.only or any(n not in FIGURES for n in self.only)):
            raise ParameterError("only", ",".join(map(str, self.only)),
                                 f"comma-separated figure numbers (valid: {','.join(map(str, sorted(FIGURES)))})")


def run(config: FiguresConfig, progress: bool = False) -> dict[int, list[Path]]:
    """Make the selected figures (all by default) in order; figure number -> the files written."""
    written = {}
    for number in config.only or sorted(FIGURES):
        try:
            written[number] = run_figure(number, out=config.out, full=config.full, seed=config.seed,
                                         replot=config.replot, data_root=config.data_root)
        except FileNotFoundError as err:
            if not config.replot:
                raise
            raise UsageError(f"argument {flags(FiguresConfig)['replot']}: {err}") from None
    return written


def format_report(written: dict[int, list[Path]]) -> str:
    return "\n".join(f"figure {number}: " + ", ".join(map(str, paths)) for number, paths in written.items())
