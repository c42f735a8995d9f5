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
    """Meta-learned parameters θ, the meta-learned gradient transform (None if there was none), the meta-loss
    history (one value per iteration) and the path that computed MAML (``path``: 'closed_form', 'low_rank' or
    'functional'; 'stacked:' before it when runs went at once, meta_train_runs)."""

    params: Params
    transform: GradientTransform | None = None
    history: list[float] = field(default_factory=list)
    path: str = "functional"


@dataclass(frozen=True)
class Training:
    """How meta-training goes, for meta_train and meta_train_runs alike: validated once, here.

    ``lr_decay`` anneals the meta learning rate by cosine to 0, so the final iterate settles (used where a
    meta-trained optimum is compared with its prediction); ``outer="reptile"`` writes Reptile's direction
    θ − mean_τ θ_k,τ into θ's gradient instead of the meta-loss gradient; ``optimizer`` is Adam or plain SGD."""

    iterations: int
    meta_batch: int = 32
    meta_lr: float = 1e-3
    learn_init: bool = True
    lr_decay: bool = False
    optimizer: str = "adam"
    outer: str = "maml"

    def __post_init__(self):
        if self.outer not in OUTER:
            raise ParameterError("outer", self.outer, f"one of {OUTER}")
        if self.optimizer not in OPTIMIZERS:
            raise ParameterError("optimizer", self.optimizer, f"one of {tuple(OPTIMIZERS)}")
        require_int("iterations", self.iterations, 0)
        require_int("meta_batch", self.meta_batch, 1)
        require_real("meta_lr", self.meta_lr, 0.0, strict=True)

    def start(self, params: Params, t_params: Params):
        """(optimizer, schedule or None) over θ (if learned) and the transform's parameters."""
        leaves = (list(params.values()) if self.learn_init else []) + list(t_params.values())
        opt = OPTIMIZERS[self.optimizer](leaves, lr=self.meta_lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(self.iterations, 1)) if self.lr_decay else None
        return opt, schedule

    def bar(self, progress: bool | str):
        return tqdm(range(self.iterations), desc=progress if isinstance(progress, str) else "meta-train",
                    disable=None if progress else True, leave=False)


def maml_path(model: torch.nn.Module, inner: InnerLoop, transform: GradientTransform | None = None) -> str:
    """How MAML is computed for (model, inner, transform), chosen here once: a linear chain's 'closed_form' or
    'low_rank' path (simulations.linear_chain_maml.fast_path) where one applies, else 'functional'
    (simulations.maml: torch.func through the inner loop)."""
    return fast_path(model, inner, transform) or "functional"


def _step(opt, schedule, loss: torch.Tensor | None = None, grads: list | None = None) -> None:
    """One update, the same in every loop: the gradient from ``loss`` (backward) or given (``grads``: (leaf,
    gradient) pairs, Reptile's direction), the optimizer's step, then the schedule's."""
    opt.zero_grad()
    if grads is None:
        loss.backward()
    else:
        for leaf, grad in grads:
            leaf.grad = grad.clone()
    opt.step()
    if schedule is not None:
        schedule.step()


def meta_train(model: torch.nn.Module, sampler: TaskSampler, inner: InnerLoop, iterations: int,
               meta_batch: int = 32, meta_lr: float = 1e-3, seed: int = 0,
               transform: GradientTransform | None = None, learn_init: bool = True,
               lr_decay: bool = False, progress: bool | str = False,
               on_step: Callable[[int, Params, Params], None] | None = None, outer: str = "maml",
               optimizer: str = "adam") -> MetaTrainResult:
    """Minimise the MAML objective with Adam (or SGD) over θ (and the transform's parameters, if any); the
    options are Training's.

    Each iteration draws a fresh meta-batch from ``sampler`` with a generator seeded from
    ``seed``, so the run is reproducible. A non-finite meta-loss raises DivergenceError.
    ``on_step(i, θ, φ)`` is called before the first update (i = 0) and after update i (i = 1 … iterations),
    e.g. to record learning curves. With ``outer="reptile"`` (no learned transform; the history is the same
    post-adaptation query loss) and ``optimizer="sgd"`` the update is the usual Reptile step
    θ ← θ + ε (mean_τ θ_k,τ − θ), ε = meta_lr.
    """
    training = Training(iterations, meta_batch, meta_lr, learn_init, lr_decay, optimizer, outer)
    return _meta_train(model, sampler, inner, training, seed, transform, progress, on_step)


def _meta_train(model, sampler: TaskSampler, inner: InnerLoop, training: Training, seed: int,
                transform: GradientTransform | None, progress: bool | str, on_step) -> MetaTrainResult:
    if training.outer == "reptile" and (not training.learn_init or (transform is not None and transform.params)):
        raise ParameterError("outer", training.outer,
                             "'maml' where a transform is learned or θ is not (Reptile moves θ only)")
    params = initial_params(model)
    t_params = transform.params if transform is not None else {}
    for p in params.values():
        p.requires_grad_(training.learn_init)
    path = maml_path(model, inner, transform)
    objective = meta_loss if path == "functional" else chain_meta_loss
    opt, schedule = training.start(params, t_params)
    gen = make_generator(seed)
    history = []
    if on_step is not None:
        on_step(0, params, t_params)
    for it in training.bar(progress):
        batch = sampler(training.meta_batch, gen)
        if training.outer == "reptile":
            direction, loss = reptile_direction(model, params, batch, inner, transform)
        else:
            loss = objective(model, params, batch, inner, transform)
        if not torch.isfinite(loss):
            raise DivergenceError(it, loss.item())
        _step(opt, schedule, loss, [(p, direction[n]) for n, p in params.items()] if training.outer == "reptile"
              else None)
        history.append(loss.item())
        if on_step is not None:
            on_step(it + 1, params, t_params)
    learned = transform.with_params({n: p.detach() for n, p in t_params.items()}) if transform else None
    return MetaTrainResult({n: p.detach() for n, p in params.items()}, learned, history, path)


def meta_train_runs(models: list[torch.nn.Module], sampler: TaskSampler, inner: InnerLoop, iterations: int,
                    seeds: list[int], meta_batch: int = 32, meta_lr: float = 1e-3,
                    transforms: list[GradientTransform] | None = None, learn_init: bool = True,
                    lr_decay: bool = False, progress: bool | str = False,
                    on_step: Callable[[int, int, Params, Params], None] | None = None,
                    optimizer: str = "adam") -> list[MetaTrainResult | DivergenceError]:
    """Independent MAML runs: run r is ``meta_train(models[r], sampler, inner, iterations, meta_batch, meta_lr,
    seed=seeds[r], transform=transforms[r], …)`` (the same Training); a run whose meta-loss becomes non-finite
    gets its DivergenceError (iteration, value) in place of a result, and the others go on. ``on_step(r, i, θ,
    φ)`` is meta_train's callback for run r.

    Where every model is a LinearChain of one shape on a fast path (maml_path: closed form or low rank) the runs
    go at once, paying the per-operation cost of a small step once (3 runs at figure 3's sizes: about 1.3 runs'
    time): parameters (and transform factors) stacked along a leading run axis, their meta-losses
    (linear_chain_maml.chain_run_losses) summed, so every run's gradient is its own; the optimizer's update is
    elementwise and the schedule shared, so each run keeps its own optimizer state; run r draws its tasks from
    its own generator at seeds[r]. The same numbers as meta_train run by run, to float rounding (tests); each
    result's ``path`` says 'stacked:<path>'. Otherwise the runs go one after another through meta_train.
    Either way the given models and transforms are left as they were: the trained factors are in each
    result's ``transform``.
    """
    training = Training(iterations, meta_batch, meta_lr, learn_init, lr_decay, optimizer)
    runs = len(models)
    transforms = [None] * runs if transforms is None else list(transforms)
    if runs < 1 or len(seeds) != runs or len(transforms) != runs:
        raise ParameterError("seeds", len(seeds), f"one seed (and transform) per model: {runs} models")
    paths = {maml_path(m, inner, t) for m, t in zip(models, transforms)}
    kinds = {getattr(t, "kronecker", None) for t in transforms}
    if "functional" in paths or len({tuple(m.widths) for m in models}) > 1 or len(kinds) > 1:
        return [_meta_train_or_divergence(model, sampler, inner, training, seed,
                                          None if transform is None else transform.with_params(
                                              {k: v.detach().clone().requires_grad_(True)
                                               for k, v in transform.params.items()}),
                                          progress, None if on_step is None else functools.partial(on_step, r))
                for r, (model, seed, transform) in enumerate(zip(models, seeds, transforms))]
    inits = [initial_params(m) for m in models]
    params = {n: torch.stack([p[n].detach() for p in inits]).requires_grad_(learn_init) for n in inits[0]}
    t_params = ({k: torch.stack([t.params[k].detach() for t in transforms]).requires_grad_(True)
                 for k in transforms[0].params} if transforms[0] is not None else {})
    transform = transforms[0].with_params(t_params) if transforms[0] is not None else None
    opt, schedule = training.start(params, t_params)
    gens = [make_generator(seed) for seed in seeds]
    histories, failed = [[] for _ in models], [None] * runs

    def report(i):
        if on_step is None:
            return
        for r in range(runs):
            if failed[r] is None:
                on_step(r, i, {n: p[r] for n, p in params.items()}, {k: t[r] for k, t in t_params.items()})

    report(0)
    for it in training.bar(progress):
        batch = stack_batches([sampler(training.meta_batch, gen) for gen in gens])
        losses = chain_run_losses(models[0], params, batch, inner, transform)  # (R,)
        _step(opt, schedule, losses.sum())  # a diverged run's NaNs stay in its own slice
        for r, value in enumerate(losses.tolist()):
            if failed[r] is None and not math.isfinite(value):
                failed[r] = DivergenceError(it, value)
            elif failed[r] is None:
                histories[r].append(value)
        report(it + 1)
        if all(failed):
            break
    path = f"stacked:{paths.pop()}"
    results = []
    for r in range(runs):
        learned = (transform.with_params({k: t[r].detach() for k, t in t_params.items()})
                   if transform is not None else None)
        results.append(failed[r] or MetaTrainResult({n: p[r].detach() for n, p in params.items()}, learned,
                                                    histories[r], path))
    return results


def _meta_train_or_divergence(*args) -> MetaTrainResult | DivergenceError:
    try:
        return _meta_train(*args)
    except DivergenceError as err:
        return err


def stack_batches(batches: list[TaskBatch]) -> TaskBatch:
    """Several runs' meta-batches one after the other: x (R·T, K, d) etc."""
    fields = zip(*((b.x_support, b.y_support, b.x_query, b.y_query, b.weights) for b in batches))
    return TaskBatch(*(None if parts[0] is None else torch.cat(parts) for parts in fields))


def batched_task_losses(model: torch.nn.Module, params: Params, batch: TaskBatch, inner: InnerLoop,
                        transform: GradientTransform | None = None, with_accuracy: bool = False,
                        with_pre: bool = True) -> dict[str, torch.Tensor]:
    """simulations.maml.task_losses, by a linear chain's fast path (linear_chain_maml.chain_task_losses) where
    one applies: the same per-task losses (to float rounding) without forming any task's adapted weights."""
    losses = task_losses if maml_path(model, inner, transform) == "functional" else chain_task_losses
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
