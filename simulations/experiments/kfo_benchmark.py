"""Cost of the Kronecker-factored meta-optimizer (simulations.kfo): one MAML+KFO meta-step against plain
functional MAML, time and peak memory measured side by side in one process (``paper_repro.py bench``).

Two paths, each KFO step against the plain step of the same path: "functional" = simulations.maml.meta_loss
(vmap; what meta_train runs with a transform), where U(G) = L G R acts on every task's full gradient G
(out × in) and autograd keeps G and L·G per task for the backward pass; and "closed_form" =
simulations.linear_chain_maml.closed_form_meta_loss (linear and psd forms on a LinearChain), where U acts on
G's rank-K factors (D Lᵀ, H R) and no task's G or adapted weight is ever formed.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

from simulations.experiments.measure import MEMORY_METHOD, peak_step_bytes, time_interleaved
from simulations.kfo import kfo_transform
from simulations.linear_chain_maml import closed_form_meta_loss
from simulations.maml import GradientTransform, InnerLoop, initial_params, meta_loss
from simulations.models import deep_linear
from simulations.tasks import make_generator, sample_regression_tasks
from theory.ground.errors import require_int
from theory.task_family import LinearTaskFamily

META_LR = 1e-3  # Adam step size of the timed meta-training (small: 20 steps must not diverge)
KFO_MEMORY_REPEATS = 3  # profiled steps per path; the median peak is reported


def _kfo_step(model: torch.nn.Module, transform: GradientTransform | None, family: LinearTaskFamily, meta_batch: int,
              inner: InnerLoop, seed: int, dtype: torch.dtype, device: torch.device,
              objective: Callable = meta_loss) -> Callable[[], float]:
    """One full MAML(+KFO) step of ``objective`` (default the functional path): sample, meta-loss, backward,
    Adam over θ (and φ)."""
    gen, params = make_generator(seed), initial_params(model)
    t_params = transform.params if transform is not None else {}
    opt = torch.optim.Adam([*params.values(), *t_params.values()], lr=META_LR)

    def step() -> float:
        batch = sample_regression_tasks(family, meta_batch, gen, dtype).to(device)
        loss = objective(model, params, batch, inner, transform)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()  # .item() waits for the device

    return step


def benchmark_kfo_cost(dim: int = 100, depth: int = 3, width: int = 64, meta_batch: int = 32,
                       support: int = 10, query: int = 10, iterations: int = 20, threads: int = 2,
                       form: str = "linear", seed: int = 0, dtype: torch.dtype = torch.float32,
                       alpha: float = 0.05, device: str = "cpu") -> dict:
    """Cost of one MAML+KFO meta-step relative to plain functional MAML (simulations.maml.meta_loss).

    Same deep linear model, same task stream, one second-order inner step. Time: interleaved
    repetitions after WARMUP steps (``time_interleaved``), ratio = median_i t_kfo,i / t_plain,i.
    Memory: median over KFO_MEMORY_REPEATS steps of each path's peak extra allocation
    (``peak_step_bytes``). Returns settings, 'timing', 'time_ratio', 'memory', 'memory_ratio',
    'meta_parameters' (θ and KFO factor counts), 'init_loss_gap' (untrained KFO = plain step: 0), and
    'closed_form': the same ratios on the closed-form path (module doc; None for the nonlinear form).
    """
    inner, dev = InnerLoop(alpha), torch.device(device)
    settings = {"dim": dim, "depth": depth, "width": width, "meta_batch": meta_batch, "support": support,
                "query": query, "iterations": iterations, "threads": threads, "form": form, "seed": seed,
                "dtype": str(dtype).replace("torch.", ""), "alpha": alpha, "device": str(dev)}
    for name in ("dim", "depth", "width", "meta_batch", "support", "query", "iterations", "threads"):
        require_int(name, settings[name], 1)
    family = LinearTaskFamily.subspace(dim, support, query, rank=min(5, dim))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        paths = ("plain", "kfo") + (("closed_plain", "closed_kfo") if form != "nonlinear" else ())
        models = {p: deep_linear(dim, depth, width, seed=seed, dtype=dtype).to(dev) for p in paths}
        transforms = {p: kfo_transform(models[p], form, dtype=dtype) if p.endswith("kfo") else None for p in paths}
        transform = transforms["kfo"]
        steps = {p: _kfo_step(models[p], transforms[p], family, meta_batch, inner, seed + 1, dtype, dev,
                              closed_form_meta_loss if p.startswith("closed") else meta_loss) for p in paths}
        init_gap = abs(steps["kfo"]() - steps["plain"]())  # the first step: identical θ, φ = identity
        times, _ = time_interleaved(steps, iterations)
        memory = {p: statistics.median(peak_step_bytes(steps[p], dev) for _ in range(KFO_MEMORY_REPEATS))
                  for p in steps}
    finally:
        torch.set_num_threads(previous)
    time_ratio, quartiles = _paired_ratio(times["kfo"], times["plain"])
    closed = None
    if "closed_kfo" in times:
        closed_ratio, closed_quartiles = _paired_ratio(times["closed_kfo"], times["closed_plain"])
        closed = {"time_ratio": closed_ratio, "time_ratio_quartiles": closed_quartiles,
                  "memory_ratio": memory["closed_kfo"] / memory["closed_plain"]}
    return {"settings": settings, "time_ratio": time_ratio, "time_ratio_quartiles": quartiles,
            "timing": {p: {"median_s": statistics.median(t), "times_s": t} for p, t in times.items()},
            "memory": memory, "memory_ratio": memory["kfo"] / memory["plain"],
            "memory_method": MEMORY_METHOD[dev.type],
            "meta_parameters": {"theta": sum(p.numel() for p in models["plain"].parameters()),
                                "kfo_factors": sum(t.numel() for t in transform.params.values())},
            "init_loss_gap": init_gap, "closed_form": closed}


def _paired_ratio(times: list[float], reference: list[float]) -> tuple[float, tuple[float, float]]:
    """Median and quartiles of the per-repetition ratios t_i / t_reference,i."""
    ratios = sorted(a / b for a, b in zip(times, reference))
    q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    return statistics.median(ratios), (q1, q3)


def format_kfo_cost(result: dict) -> str:
    """A human-readable summary of ``benchmark_kfo_cost``'s result."""
    s, t, m = result["settings"], result["timing"], result["memory"]
    q1, q3 = result["time_ratio_quartiles"]
    return "\n".join([
        f"MAML+KFO ({s['form']}) vs plain functional MAML: T = {s['meta_batch']} tasks, d = {s['dim']}, "
        f"depth {s['depth']}, width {s['width']}, K = {s['support']}, Q = {s['query']}, α = {s['alpha']}, "
        f"{s['dtype']}, {s['device']}, {s['threads']} threads, {s['iterations']} interleaved repetitions",
        f"  meta-parameters: θ {result['meta_parameters']['theta']}, "
        f"KFO factors {result['meta_parameters']['kfo_factors']}; "
        f"first-step meta-loss gap (untrained KFO = plain step) {result['init_loss_gap']:.1e}",
        f"  time per full step (sample, meta-loss, backward, Adam): "
        f"plain {1e3 * t['plain']['median_s']:.2f} ms, KFO {1e3 * t['kfo']['median_s']:.2f} ms; "
        f"ratio {result['time_ratio']:.2f}× [{q1:.2f}, {q3:.2f}]",
        f"  peak extra memory per step: plain {m['plain'] / 2**20:.2f} MiB, KFO {m['kfo'] / 2**20:.2f} MiB; "
        f"ratio {result['memory_ratio']:.2f}×",
        *_closed_form_lines(result),
        f"  memory method: {result['memory_method']}"])


def _closed_form_lines(result: dict) -> list[str]:
    """The closed-form path's KFO-to-plain ratios, where the form has one (linear, psd)."""
    closed = result["closed_form"]
    if closed is None:
        return ["  closed-form path: not for this form (U is not linear in G, so it needs each task's full G)"]
    t, m = result["timing"], result["memory"]
    q1, q3 = closed["time_ratio_quartiles"]
    return [f"  closed-form path (U on G's rank-K factors): plain {1e3 * t['closed_plain']['median_s']:.2f} ms, "
            f"KFO {1e3 * t['closed_kfo']['median_s']:.2f} ms, ratio {closed['time_ratio']:.2f}× [{q1:.2f}, {q3:.2f}]; "
            f"memory plain {m['closed_plain'] / 2**20:.2f} MiB, KFO {m['closed_kfo'] / 2**20:.2f} MiB, "
            f"ratio {closed['memory_ratio']:.2f}×"]
