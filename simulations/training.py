"""Meta-training (MAML, FO-MAML or Reptile; Adam or SGD) and evaluation on fresh tasks (mean and 95% interval)."""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from simulations.linear_chain_maml import chain_meta_loss, chain_run_losses, chain_task_losses, fast_path
from simulations.maml import GradientTransform, InnerLoop, Params, initial_params, meta_loss, task_losses
from simulations.reptile import reptile_direction
from simulations.statistics import Estimate
from simulations.tasks import TaskBatch, make_generator
from theory.ground.errors import DivergenceError, ParameterError, require_int, require_real

TaskSampler = Callable[[int, torch.Generator], TaskBatch]  # (n_tasks, generator) -> batch
OUTER = ("maml", "reptile")  # the outer direction: the meta-loss gradient (FO-MAML via inner.first_order) or θ − θ_k
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


@dataclass
class MetaTrainResult:
    """Meta-learned parameters θ, the meta-learned gradient transform (None if there was none) and the
    meta-loss history (one value per iteration)."""

    params: Params
    transform: GradientTransform | None = None
    history: list[float] = field(default_factory=list)


def meta_train(model: torch.nn.Module, sampler: TaskSampler, inner: InnerLoop, iterations: int,
               meta_batch: int = 32, meta_lr: float = 1e-3, seed: int = 0,
               transform: GradientTransform | None = None, learn_init: bool = True,
               lr_decay: bool = False, progress: bool | str = False,
               on_step: Callable[[int, Params, Params], None] | None = None, outer: str = "maml",
               optimizer: str = "adam") -> MetaTrainResult:
    """Minimise the MAML objective with Adam (or SGD) over θ (and the transform's parameters, if any).

    Each iteration draws a fresh meta-batch from ``sampler`` with a generator seeded from
    ``seed``, so the run is reproducible. A non-finite meta-loss raises DivergenceError.
    ``lr_decay`` anneals the meta learning rate by cosine to 0, so the final iterate settles
    (used where a meta-trained optimum is compared with its prediction). ``on_step(i, θ, φ)`` is
    called before the first update (i = 0) and after update i (i = 1 … iterations), e.g. to record
    learning curves. ``outer="reptile"`` writes Reptile's direction θ − mean_τ θ_k,τ (simulations.reptile)
    into θ's gradient instead (no learned transform; the history is the same post-adaptation query loss);
    with ``optimizer="sgd"`` the update is the usual Reptile step θ ← θ + ε (mean_τ θ_k,τ − θ), ε = meta_lr.
    """
    if outer not in OUTER:
        raise ParameterError("outer", outer, f"one of {OUTER}")
    if optimizer not in OPTIMIZERS:
        raise ParameterError("optimizer", optimizer, f"one of {tuple(OPTIMIZERS)}")
    if outer == "reptile" and (not learn_init or (transform is not None and transform.params)):
        raise ParameterError("outer", outer, "'maml' where a transform is learned or θ is not (Reptile moves θ only)")
    iterations = require_int("iterations", iterations, 0)
    meta_batch = require_int("meta_batch", meta_batch, 1)
    require_real("meta_lr", meta_lr, 0.0, strict=True)
    params = initial_params(model)
    t_params = transform.params if transform is not None else {}
    leaves = (list(params.values()) if learn_init else []) + list(t_params.values())
    for p in params.values():
        p.requires_grad_(learn_init)
    objective = _objective(model, inner, transform)
    opt = OPTIMIZERS[optimizer](leaves, lr=meta_lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(iterations, 1)) if lr_decay else None
    gen = make_generator(seed)
    history = []
    bar = tqdm(range(iterations), desc=progress if isinstance(progress, str) else "meta-train",
               disable=None if progress else True, leave=False)
    if on_step is not None:
        on_step(0, params, t_params)
    for it in bar:
        if outer == "reptile":
            direction, loss = reptile_direction(model, params, sampler(meta_batch, gen), inner, transform)
        else:
            loss = objective(model, params, sampler(meta_batch, gen), inner, transform)
        if not torch.isfinite(loss):
            raise DivergenceError(it, loss.item())
        opt.zero_grad()
        if outer == "reptile":
            for name, p in params.items():
                p.grad = direction[name].clone()
        else:
            loss.backward()
        opt.step()
        if schedule is not None:
            schedule.step()
        history.append(loss.item())
        if on_step is not None:
            on_step(it + 1, params, t_params)
    learned = transform.with_params({n: p.detach() for n, p in t_params.items()}) if transform else None
    return MetaTrainResult({n: p.detach() for n, p in params.items()}, learned, history)


def meta_train_runs(models: list[torch.nn.Module], sampler: TaskSampler, inner: InnerLoop, iterations: int,
                    seeds: list[int], meta_batch: int = 32, meta_lr: float = 1e-3,
                    transforms: list[GradientTransform] | None = None, learn_init: bool = True,
                    lr_decay: bool = False, progress: bool | str = False,
                    on_step: Callable[[int, int, Params, Params], None] | None = None,
                    optimizer: str = "adam") -> list[MetaTrainResult | DivergenceError]:
    """Independent MAML runs: run r is ``meta_train(models[r], sampler, inner, iterations, meta_batch, meta_lr,
    seed=seeds[r], transform=transforms[r], …)``; a run whose meta-loss becomes non-finite gets its
    DivergenceError (iteration, value) in place of a result, and the others go on. ``on_step(r, i, θ, φ)`` is
    meta_train's callback for run r.

    Where every model is a LinearChain of one shape on a fast path (simulations.linear_chain_maml.fast_path)
    the runs go at once, paying the per-operation cost of a small step once (3 runs at figure 3's sizes: about
    1.3 runs' time): parameters (and transform
    factors) stacked along a leading run axis, their meta-losses (linear_chain_maml.chain_run_losses)
    summed, so every run's gradient is its own; the optimizer's update is elementwise and the schedule
    shared, so each run keeps its own optimizer state; run r draws its tasks from its own generator at
    seeds[r]. The same numbers as meta_train run by run, to float rounding (tests). Otherwise the runs go
    one after another through meta_train. Either way the given models and transforms are left as they were:
    the trained factors are in each result's ``transform``.
    """
    runs = len(models)
    transforms = [None] * runs if transforms is None else list(transforms)
    if runs < 1 or len(seeds) != runs or len(transforms) != runs:
        raise ParameterError("seeds", len(seeds), f"one seed (and transform) per model: {runs} models")
    kinds = {getattr(t, "kronecker", None) for t in transforms}
    if (any(fast_path(m, inner, t) is None for m, t in zip(models, transforms))
            or len({tuple(m.widths) for m in models}) > 1 or len(kinds) > 1):
        return [_meta_train_or_divergence(model, sampler, inner, iterations, meta_batch, meta_lr, seed=seed,
                                          transform=None if transform is None else transform.with_params(
                                              {k: v.detach().clone().requires_grad_(True)
                                               for k, v in transform.params.items()}),
                                          learn_init=learn_init, lr_decay=lr_decay,
                                          progress=progress, optimizer=optimizer,
                                          on_step=None if on_step is None else functools.partial(on_step, r))
                for r, (model, seed, transform) in enumerate(zip(models, seeds, transforms))]
    if optimizer not in OPTIMIZERS:
        raise ParameterError("optimizer", optimizer, f"one of {tuple(OPTIMIZERS)}")
    iterations = require_int("iterations", iterations, 0)
    meta_batch = require_int("meta_batch", meta_batch, 1)
    require_real("meta_lr", meta_lr, 0.0, strict=True)
    inits = [initial_params(m) for m in models]
    params = {n: torch.stack([p[n].detach() for p in inits]).requires_grad_(learn_init) for n in inits[0]}
    t_params = ({k: torch.stack([t.params[k].detach() for t in transforms]).requires_grad_(True)
                 for k in transforms[0].params} if transforms[0] is not None else {})
    transform = transforms[0].with_params(t_params) if transforms[0] is not None else None
    opt = OPTIMIZERS[optimizer]((list(params.values()) if learn_init else []) + list(t_params.values()), lr=meta_lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(iterations, 1)) if lr_decay else None
    gens = [make_generator(seed) for seed in seeds]
    histories, failed = [[] for _ in models], [None] * runs

    def report(i):
        if on_step is None:
            return
        for r in range(runs):
            if failed[r] is None:
                on_step(r, i, {n: p[r] for n, p in params.items()}, {k: t[r] for k, t in t_params.items()})

    report(0)
    bar = tqdm(range(iterations), desc=progress if isinstance(progress, str) else "meta-train",
               disable=None if progress else True, leave=False)
    for it in bar:
        batch = stack_batches([sampler(meta_batch, gen) for gen in gens])
        losses = chain_run_losses(models[0], params, batch, inner, transform)  # (R,)
        opt.zero_grad()
        losses.sum().backward()  # a diverged run's NaNs stay in its own slice
        opt.step()
        if schedule is not None:
            schedule.step()
        for r, value in enumerate(losses.tolist()):
            if failed[r] is None and not math.isfinite(value):
                failed[r] = DivergenceError(it, value)
            elif failed[r] is None:
                histories[r].append(value)
        report(it + 1)
        if all(failed):
            break
    results = []
    for r in range(runs):
        learned = (transform.with_params({k: t[r].detach() for k, t in t_params.items()})
                   if transform is not None else None)
        results.append(failed[r] or MetaTrainResult({n: p[r].detach() for n, p in params.items()}, learned,
                                                    histories[r]))
    return results


def _meta_train_or_divergence(*args, **kwargs) -> MetaTrainResult | DivergenceError:
    try:
        return meta_train(*args, **kwargs)
    except DivergenceError as err:
        return err


def stack_batches(batches: list[TaskBatch]) -> TaskBatch:
    """Several runs' meta-batches one after the other: x (R·T, K, d) etc."""
    fields = zip(*((b.x_support, b.y_support, b.x_query, b.y_query, b.weights) for b in batches))
    return TaskBatch(*(None if parts[0] is None else torch.cat(parts) for parts in fields))


def _objective(model: torch.nn.Module, inner: InnerLoop, transform) -> Callable:
    """The meta-loss to train with: a linear-chain fast path where one applies, else functional MAML."""
    return chain_meta_loss if fast_path(model, inner, transform) else meta_loss


def batched_task_losses(model: torch.nn.Module, params: Params, batch: TaskBatch, inner: InnerLoop,
                        transform: GradientTransform | None = None, with_accuracy: bool = False,
                        with_pre: bool = True) -> dict[str, torch.Tensor]:
    """simulations.maml.task_losses, by a linear chain's fast path (linear_chain_maml.chain_task_losses) where
    one applies: the same per-task losses (to float rounding) without forming any task's adapted weights."""
    losses = chain_task_losses if fast_path(model, inner, transform) else task_losses
    return losses(model, params, batch, inner, transform, with_accuracy, with_pre)


def evaluate(model: torch.nn.Module, params: Params, sampler: TaskSampler, inner: InnerLoop,
             n_tasks: int = 2000, seed: int = 12345, transform: GradientTransform | None = None,
             with_accuracy: bool = False, chunk: int = 1000) -> dict[str, Estimate]:
    """Pre- and post-adaptation query losses (and accuracies) on fresh tasks, as Estimates (batched_task_losses)."""
    n_tasks = require_int("n_tasks", n_tasks, 2)
    gen = make_generator(seed)
    parts: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():  # torch.func.grad inside still differentiates the inner loop
        for start in range(0, n_tasks, chunk):
            batch = sampler(min(chunk, n_tasks - start), gen)
            out = batched_task_losses(model, params, batch, inner, transform, with_accuracy)
            for key, value in out.items():
                parts.setdefault(key, []).append(value.detach())
    return {key: Estimate.from_samples(torch.cat(v)) for key, v in parts.items()}
