"""Independent meta-training runs stacked along a run axis (simulations.training.meta_train_runs) against the
same runs one after another (meta_train's step per run), timed side by side in one process
(``paper_repro.py bench``).

Setting: figure 3's kind of problem, where meta-training is bound by per-operation overhead: subspace regression
tasks (d = 20, K = 5, Q = 20, r = 2), a depth-2 width-16 linear chain, one inner step at α*, T = 32 tasks per
run and meta-step, R = 3 runs (a figure's seeds), float64. Both paths take a full step for every run: draw
each run's meta-batch from its own generator, the meta-loss (simulations.linear_chain_maml's closed form),
backward, Adam. ratio = median over repetitions of t_one_by_one / t_stacked.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

from simulations.experiments.measure import time_interleaved
from simulations.linear_chain_maml import chain_meta_loss, chain_run_losses
from simulations.maml import InnerLoop, initial_params
from simulations.models import deep_linear
from simulations.tasks import make_generator, sample_regression_tasks
from simulations.training import stack_batches
from theory.ground.errors import require_int
from theory.shallow_maml import optimal_step_size
from theory.task_family import LinearTaskFamily

META_LR = 1e-3  # Adam step size of the timed meta-training


def _steps(models: list, family: LinearTaskFamily, meta_batch: int, inner: InnerLoop) -> dict[str, Callable]:
    """{"stacked": one step of all runs at once, "one_by_one": one step of each run in turn}."""
    gens = {path: [make_generator(r) for r in range(len(models))] for path in ("stacked", "one_by_one")}
    singles = [initial_params(m) for m in models]
    stacked = {n: torch.stack([p[n].detach() for p in singles]).requires_grad_(True) for n in singles[0]}
    opts = {"stacked": torch.optim.Adam(list(stacked.values()), lr=META_LR),
            "one_by_one": [torch.optim.Adam(list(p.values()), lr=META_LR) for p in singles]}

    def stacked_step() -> float:
        batch = stack_batches([sample_regression_tasks(family, meta_batch, g) for g in gens["stacked"]])
        losses = chain_run_losses(models[0], stacked, batch, inner)
        opts["stacked"].zero_grad()
        losses.sum().backward()
        opts["stacked"].step()
        return losses.sum().item()

    def one_by_one_step() -> float:
        total = 0.0
        for model, params, opt, gen in zip(models, singles, opts["one_by_one"], gens["one_by_one"]):
            loss = chain_meta_loss(model, params, sample_regression_tasks(family, meta_batch, gen), inner)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        return total

    return {"stacked": stacked_step, "one_by_one": one_by_one_step}


def benchmark_stacked_runs(runs: int = 3, dim: int = 20, depth: int = 2, width: int = 16, meta_batch: int = 32,
                           iterations: int = 20, threads: int = 1) -> dict:
    """Step times of R stacked runs and of the same R runs one after another, and their ratio (module doc)."""
    runs, iterations = require_int("runs", runs, 1), require_int("iterations", iterations, 1)
    family = LinearTaskFamily.subspace(dim, 5, 20, rank=2, seed=0)
    inner = InnerLoop(optimal_step_size(family))
    models = [deep_linear(dim, depth, width, seed=r) for r in range(runs)]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        times, losses = time_interleaved(_steps(models, family, meta_batch, inner), iterations)
    finally:
        torch.set_num_threads(previous)
    ratios = [a / b for a, b in zip(times["one_by_one"], times["stacked"])]
    return {"settings": {"runs": runs, "dim": dim, "depth": depth, "width": width, "meta_batch": meta_batch,
                         "iterations": iterations, "threads": threads},
            "stacked_ms": 1e3 * statistics.median(times["stacked"]),
            "one_by_one_ms": 1e3 * statistics.median(times["one_by_one"]),
            "speedup": statistics.median(ratios),
            "same_losses": max(abs(a - b) for a, b in zip(losses["stacked"], losses["one_by_one"])) < 1e-9}


def format_stacked_runs(result: dict) -> str:
    s = result["settings"]
    return (f"Stacked runs (training.meta_train_runs; d = {s['dim']}, depth {s['depth']}, width {s['width']}, "
            f"T = {s['meta_batch']}, {s['threads']} thread(s)): {s['runs']} runs at once "
            f"{result['stacked_ms']:.2f} ms per step against {result['one_by_one_ms']:.2f} ms one after another: "
            f"{result['speedup']:.2f}× (median of {s['iterations']} interleaved repetitions; same meta-losses: "
            f"{'yes' if result['same_losses'] else 'NO'})")
