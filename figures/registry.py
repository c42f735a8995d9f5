"""The figure registry: number -> figure module (Config with its quick and full profiles, EXPERIMENT, COLUMNS,
rows, plot, caption), and the unit protocol, defined once here.

A figure's numbers come from its experiment (simulations/experiments/<name>.py, no matplotlib): ``units(config,
seed)`` is every unit of work (key -> a picklable zero-argument callable: one meta-training setting, one check)
and ``assemble(config, seed, done)`` the results from the finished units. ``compute`` is their serial composition
and the number of units is ``len(units)``; figures.cluster runs the same units on Dask workers.

``run_figure`` computes one figure in this process and writes, under the output folder,
figN_name.{json,csv,pdf,png}: the JSON holds the config, seed, provenance (library versions, the lock
file's and the code's digests, the CPU kernels) and the full results (so --replot needs no
recomputation); the CSV the plotted numbers with their intervals. The same code, lock and machine
write the same bytes in all four.
A ``FigureJob`` is one figure's config, checkpoint and writer; figures.cluster runs the units of
several jobs on Dask workers and writes each through its job. ``FiguresConfig`` declares the options
of ``paper_repro.py figures`` (the default command); ``run`` and ``format_report`` are the command.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
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
    fig9_beyond_identical_tasks,
    fig10_dynamics,
    fig11_adaptation_rules,
)
from figures.checkpoint import UnitCheckpoint, run_units
from figures.common import save_figure, write_csv
from theory.ground import paths
from theory.ground.atomic_io import atomic_write_json
from theory.ground.errors import ParameterError, UsageError, require_int, require_seed
from theory.ground.options import Threads, flags, option

FIGURES = {1: ("failure_mode", fig1_failure_mode), 2: ("loss_surface", fig2_loss_surface),
           3: ("depth_width", fig3_depth_width), 4: ("theory_vs_simulation", fig4_theory_vs_simulation),
           5: ("remedies", fig5_remedies),
           6: ("phase_diagram", fig6_phase_diagram), 7: ("vision", fig7_vision), 8: ("many_steps", fig8_many_steps),
           9: ("beyond_identical_tasks", fig9_beyond_identical_tasks), 10: ("dynamics", fig10_dynamics),
           11: ("adaptation_rules", fig11_adaptation_rules)}


def _numpy_simd() -> list[str] | None:
    """The optional SIMD kernels NumPy dispatches to here (NPY_DISABLE_CPU_FEATURES removes them); None if unknown."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:
        return None
    return [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]


ROOT = Path(__file__).resolve().parent.parent
CODE = ("theory", "simulations", "figures")  # with paper_repro.py: the code that computes and draws the figures


def _lock_digest() -> str | None:
    """sha256 (first 16 hex digits) of requirements.lock, the environment the committed CSVs come from."""
    try:
        return hashlib.sha256((ROOT / "requirements.lock").read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def code_digest() -> str:
    """sha256 (first 16 hex digits) over the paths and contents of the Python files that make the figures, as they
    are on disk (a git commit would name a dirty tree wrongly, and changes with every commit, code or not)."""
    digest = hashlib.sha256()
    for path in sorted([ROOT / "paper_repro.py", *(p for folder in CODE for p in (ROOT / folder).rglob("*.py"))]):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def provenance() -> dict:
    """Library versions, the lock file, the CPU kernels (where last-bit differences between machines come from)
    and the digest of the code the figure was made with: the same code, lock and machine write the same record."""
    import matplotlib
    import numpy
    import scipy
    import sympy
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__, "sympy": sympy.__version__, "matplotlib": matplotlib.__version__,
            "requirements_lock": _lock_digest(), "machine": platform.machine(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "numpy_simd": _numpy_simd(),
            "code": code_digest()}


@dataclass(frozen=True)
class FigureJob:
    """One figure to compute: its config for the profile, the seed, its unit checkpoint and where it goes."""

    number: int
    out: Path
    full: bool
    seed: int
    config: object  # the module's Config
    checkpoint: UnitCheckpoint

    @property
    def module(self):
        return FIGURES[self.number][1]

    @property
    def stem(self) -> Path:
        return self.out / f"fig{self.number}_{FIGURES[self.number][0]}"

    def units(self) -> dict:
        """The figure's units: key -> zero-argument callable (its experiment's ``units``)."""
        return self.module.EXPERIMENT.units(self.config, self.seed)

    def assemble(self, done: dict) -> dict:
        """The figure's results from its finished units (its experiment's ``assemble``)."""
        return self.module.EXPERIMENT.assemble(self.config, self.seed, done)

    def write(self, results: dict) -> list[Path]:
        """Write the JSON record, the CSV and the figure (PDF, PNG); drop the checkpoint; returns the paths."""
        json_path = self.stem.with_suffix(".json")
        record = {"figure": self.number, "name": FIGURES[self.number][0], "profile": "full" if self.full else "quick",
                  "seed": self.seed, "config": dataclasses.asdict(self.config), "provenance": provenance(),
                  "results": results, "caption": self.module.caption(results)}
        atomic_write_json(json_path, record)
        write_csv(self.stem.with_suffix(".csv"), self.module.rows(results))
        self.checkpoint.finish()
        return [json_path, self.stem.with_suffix(".csv"), *save_figure(self.module.plot(results), self.stem)]


def output_names(number: int) -> list[str]:
    """The files figure ``number`` writes (or replaces) in its output folder, its unit checkpoint included."""
    stem = f"fig{number}_{FIGURES[number][0]}"
    return [*(stem + suffix for suffix in (".json", ".csv", ".pdf", ".png")), f".{stem}.partial.json"]


def compute(module, config, seed: int = 0, progress=None) -> dict:
    """A figure's results in this process: its experiment's units one after another (through ``progress``: a
    UnitCheckpoint, a tqdm bar or None), then assembled."""
    experiment = module.EXPERIMENT
    return experiment.assemble(config, seed, run_units(progress, experiment.units(config, seed)))


def figure_config(number: int, full: bool = False, data_root: str | None = None):
    """Figure ``number``'s Config for the profile, with ``data_root`` where the figure reads data sets."""
    config = FIGURES[number][1].Config.full() if full else FIGURES[number][1].Config.quick()
    if data_root is not None and hasattr(config, "data_root"):  # figures on real data sets
        config = dataclasses.replace(config, data_root=data_root)
    return config


def figure_job(number: int, config, out: str | Path = "figures/generated", full: bool = False, seed: int = 0,
               bar=None) -> FigureJob:
    """Figure ``number``'s job for ``config``, its checkpoint at ``<out>/.figN_name.partial.json`` ticking ``bar``."""
    signature = {"figure": number, "seed": seed, "config": json.loads(json.dumps(dataclasses.asdict(config)))}
    checkpoint = UnitCheckpoint(Path(out) / f".fig{number}_{FIGURES[number][0]}.partial.json", signature, bar)
    return FigureJob(number, Path(out), full, seed, config, checkpoint)


def run_figure(number: int, out: str = "figures/generated", full: bool = False, seed: int = 0,
               replot: bool = False, data_root: str | None = None) -> list[Path]:
    """Compute (or reload) figure ``number`` in this process and write its JSON, CSV, PDF and PNG; returns the
    paths."""
    name, module = FIGURES[number]
    stem = Path(out) / f"fig{number}_{name}"
    json_path = stem.with_suffix(".json")
    if not replot:
        config = figure_config(number, full, data_root)
        units = module.EXPERIMENT.units(config, seed)
        with tqdm(total=len(units), desc=f"figure {number}", leave=False, disable=None) as bar:
            job = figure_job(number, config, out, full, seed, bar)
            results = job.assemble(run_units(job.checkpoint, units))
        return job.write(results)
    if not json_path.exists():
        raise FileNotFoundError(f"no cached results at {json_path}; run without --replot first")
    record = json.loads(json_path.read_text())
    paths = save_figure(module.plot(record["results"]), stem)
    return [json_path, stem.with_suffix(".csv"), *paths]


@dataclass(frozen=True)
class FiguresConfig(Threads):
    """Regenerate the figures (quick profile by default, `--full` for paper-grade seeds and iterations); with no
    subcommand, `figures` is meant. The figures' units run on a Dask LocalCluster of `--workers` processes
    (default: the number of cores; 1: in this process) or on an existing cluster (`--scheduler`); see "Every
    core, or a cluster". Each figure writes `figN_name.{png,pdf,csv,json}` (the JSON holds config, seed,
    provenance — library versions, the lock digest, the CPU kernels, the code digest — and all results;
    `--replot` redraws from it; the same code, lock and machine write the same bytes in all four)."""

    full: bool = option(False, "paper-grade seeds and iterations (slow; figure 7's full profile wants a GPU)",
                        not_with="replot")
    only: tuple[int, ...] | None = option(None, "figure numbers to make, e.g. 1,4 (all when not given)",
                                          choices=sorted(FIGURES))
    seed: int = option(0, "base seed: the same seed writes the same CSVs", not_with="replot")
    out: str = option("figures/generated", "output folder for the figures and their data", path="folder")
    replot: bool = option(False, "re-plot from the cached JSON results instead of computing them")
    data_root: str | None = option(None, "folder with Omniglot, CIFAR-FS and mini-ImageNet for figure 7 "
                                         "(digits, always drawn, needs none)", not_with="replot")
    workers: int | None = option(None, "processes computing the figures' units (one meta-training run each) at "
                                       "once, on a Dask LocalCluster; 1 runs them one after another in this "
                                       "process (default: the number of cores)", not_with="replot")
    scheduler: str | None = option(None, "address of a running Dask scheduler (e.g. tcp://host:8786): its "
                                         "workers compute the units, this process gathers them into --out",
                                   not_with="replot")

    def __post_init__(self):
        super().__post_init__()
        require_seed("seed", self.seed)
        if self.workers is not None:
            require_int("workers", self.workers, 1, 2**31 - 1)
        if self.scheduler is not None and self.workers is not None and self.workers > 1:
            raise UsageError(f"argument {flags(FiguresConfig)['scheduler']}: not allowed with "
                             f"{flags(FiguresConfig)['workers']} {self.workers} (the cluster's workers are its own)")
        if self.only is not None and (not self.only or any(n not in FIGURES for n in self.only)):
            raise ParameterError("only", ",".join(map(str, self.only)),
                                 f"comma-separated figure numbers (valid: {','.join(map(str, sorted(FIGURES)))})")
        paths.not_folders("out", [Path(self.out) / name for n in self.only or FIGURES for name in output_names(n)])

    @property
    def local_workers(self) -> int:
        """Worker processes to start here: --workers, else the number of cores."""
        return self.workers or os.cpu_count() or 1


def run(config: FiguresConfig, progress: bool = False) -> dict[int, list[Path]]:
    """Make the selected figures (all by default); figure number -> the files written. Their units run on
    ``config.workers`` local processes or the cluster at ``config.scheduler`` (figures.cluster), or one after
    another in this process (one worker, --replot, or at most one unit left to compute)."""
    numbers = config.only or sorted(FIGURES)
    if not config.replot and (config.scheduler is not None or config.local_workers > 1):
        from figures.cluster import run_jobs  # dask is imported only when the units are distributed

        with tqdm(total=0, desc="figures", unit="unit", disable=None) as bar:
            jobs = [figure_job(n, figure_config(n, config.full, config.data_root), config.out, config.full,
                               config.seed, bar) for n in numbers]
            pending = sum(len(set(job.units()) - set(job.checkpoint.done)) for job in jobs)
            if config.scheduler is not None or min(pending, config.local_workers) > 1:
                bar.total = sum(len(job.units()) for job in jobs)
                return run_jobs(jobs, workers=min(pending, config.local_workers), scheduler=config.scheduler,
                                threads=config.threads)
    written = {}
    for number in numbers:
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
