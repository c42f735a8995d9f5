"""The figure registry: number -> module with Config (quick/full), compute, rows, plot, caption.

``run_figure`` writes, under the output folder, figN_name.{json,csv,pdf,png}: the JSON holds
the config, seed, library versions, git commit and the full results (so --replot needs no
recomputation); the CSV the plotted numbers with their intervals.
"""
from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
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
)
from figures.checkpoint import UnitCheckpoint
from figures.common import save_figure, write_csv
from simulations.atomic_io import atomic_write_json

FIGURES = {1: ("failure_mode", fig1_failure_mode), 2: ("loss_surface", fig2_loss_surface),
           3: ("depth_width", fig3_depth_width), 4: ("theory_vs_simulation", fig4_theory_vs_simulation),
           5: ("remedies", fig5_remedies),
           6: ("phase_diagram", fig6_phase_diagram), 7: ("vision", fig7_vision)}


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
            raise FileNotFoundError(f"--replot: no cached results at {json_path}; run without --replot first")
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
