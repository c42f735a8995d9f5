"""Meta-training throughput and peak memory on the few-shot conv net: batched functional MAML
(simulations.maml, vmap over episodes) against the per-task clone-and-autograd.grad loop
(simulations.per_task_maml), for MAML, MAML+KFO and ANIL. A benchmark, never a timed test.

Each path runs full meta-steps (sample episodes, meta-loss, backward, Adam) with its own
copy of the meta-parameters, interleaved with the others so machine noise hits all alike;
ratios are medians of per-repetition ratios. Peak memory is each step's peak extra
allocation (simulations.experiments.measure.peak_step_bytes: torch.profiler events on CPU,
torch.cuda.max_memory_allocated on CUDA).
"""
from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

from simulations.experiments.measure import peak_step_bytes, time_interleaved
from simulations.kfo import kfo_transform
from simulations.maml import InnerLoop, adapted_names, initial_params, meta_loss
from simulations.per_task_maml import per_task_meta_loss
from simulations.tasks import make_generator
from simulations.vision.convnet import standard_convnet
from simulations.vision.datasets import load_pool
from simulations.vision.episodes import episode_sampler

METHODS = {"maml": ("all", False), "maml+kfo": ("all", True), "anil": ("head", False)}


def _step(path: str, method: str, sampler, ways: int, image_shape, depth: int, width: int, meta_batch: int,
          device: torch.device, seed: int) -> Callable[[], float]:
    """One full meta-step of ``method`` on ``path`` ("batched" or "loop"), with its own parameters."""
    adapt, use_kfo = METHODS[method]
    inner = InnerLoop(0.5, adapt=adapt, loss="cross_entropy")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = standard_convnet("digits", ways, image_shape, depth, width).to(device)
    names = adapted_names(model, inner) if use_kfo or adapt == "head" else None
    transform = kfo_transform(model, names=names, dtype=torch.float32) if use_kfo else None
    t_params = transform.params if transform is not None else {}
    params = initial_params(model) if path == "batched" else dict(model.named_parameters())
    opt = torch.optim.Adam([*params.values(), *t_params.values()], lr=0.003)
    gen = make_generator(seed)

    def step() -> float:
        batch = sampler(meta_batch, gen).to(device)
        if path == "batched":
            loss = meta_loss(model, params, batch, inner, transform)
        else:
            loss = per_task_meta_loss(model, batch, inner, transform)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def benchmark_vision(ways: int = 5, shots: int = 1, query: int = 5, depth: int = 4, width: int = 32,
                     meta_batch: int = 32, iterations: int = 10, threads: int = 2, device: str = "cpu",
                     seed: int = 0) -> dict:
    """Tasks/s and peak extra memory per meta-step on digits episodes, batched vs loop, per method."""
    torch.set_num_threads(threads)
    dev = torch.device(device)
    pool = load_pool("digits", "train")
    sampler = episode_sampler(pool, ways, shots, query)
    steps = {f"{m}/{p}": _step(p, m, sampler, ways, pool.image_shape, depth, width, meta_batch, dev, seed)
             for m in METHODS for p in ("batched", "loop")}
    times, _ = time_interleaved(steps, iterations)
    memory = {name: peak_step_bytes(step, dev) for name, step in steps.items()}
    out = {"settings": {"ways": ways, "shots": shots, "query": query, "depth": depth, "width": width,
                        "meta_batch": meta_batch, "iterations": iterations, "threads": threads, "device": device},
           "methods": {}}
    for m in METHODS:
        b, lp = times[f"{m}/batched"], times[f"{m}/loop"]
        out["methods"][m] = {
            "batched_tasks_per_s": meta_batch / statistics.median(b),
            "loop_tasks_per_s": meta_batch / statistics.median(lp),
            "speedup": statistics.median(x / y for x, y in zip(lp, b)),
            "batched_peak_mib": memory[f"{m}/batched"] / 2**20, "loop_peak_mib": memory[f"{m}/loop"] / 2**20}
    base = out["methods"]["maml"]["batched_tasks_per_s"]
    for m in METHODS:
        out["methods"][m]["batched_time_vs_maml"] = base / out["methods"][m]["batched_tasks_per_s"]
    return out


def format_vision_benchmark(result: dict) -> str:
    s = result["settings"]
    lines = [f"Conv-net meta-training on digits: {s['ways']}-way {s['shots']}-shot, {s['query']} queries per class, "
             f"conv {s['depth']}×{s['width']}, {s['meta_batch']} episodes per step, {s['device']}, "
             f"{s['threads']} threads, {s['iterations']} interleaved repetitions",
             f"  {'method':9s} {'batched tasks/s':>16s} {'loop tasks/s':>13s} {'batched × loop':>15s} "
             f"{'time vs MAML':>13s} {'peak MiB batched/loop':>22s}"]
    for m, r in result["methods"].items():
        lines.append(f"  {m:9s} {r['batched_tasks_per_s']:16.1f} {r['loop_tasks_per_s']:13.1f} {r['speedup']:14.2f}× "
                     f"{r['batched_time_vs_maml']:12.2f}× {r['batched_peak_mib']:10.1f} / {r['loop_peak_mib']:.1f}")
    return "\n".join(lines)
