"""One few-shot vision experiment: meta-train a conv net with MAML or ANIL (± LinNet, ± KFO), then test.

  θ'_τ = θ − α U(∇θ L_support,τ(θ))  (k steps; all parameters for MAML, the head for ANIL)
  min_θ,φ mean_τ L_query,τ(θ'_τ)     (Adam, meta-batches of T episodes; L = cross-entropy)

reported as the post-adaptation query accuracy on ``eval_tasks`` fresh test episodes, mean ± 95%
interval (the literature's 600 tasks). Classes of the three splits are disjoint, so the test
accuracy is on novel classes; for digits a class is a (digit, rotation) pair, split by digit
(0–5 train, 6–7 validation, 8–9 test: 24, 8 and 8 classes; simulations.vision.datasets).

Checkpoints hold everything the rest of the run depends on (θ, φ, Adam's state, the episode
generator's state, the iteration and history), written atomically; a run started on an existing
checkpoint of the same configuration continues it, and in float32 on the CPU ends bit-identical
to the uninterrupted run. ``iterations`` may grow between runs (training goes on from the checkpoint;
the history then keeps the earlier run's final validation check). Validation and test episodes come
from their own generators at ``seed``: the same episodes at every check and for every method.

Under ``torchrun --nproc_per_node N paper_repro.py vision …`` each meta-batch and each evaluation is
split across the N processes (simulations.vision.distributed): the same episodes, the meta-gradient
summed by one all-reduce, θ the same on every rank; rank 0 alone prints and writes the checkpoint,
which any number of processes can resume.
"""
from __future__ import annotations

import dataclasses
import io
import math
import os
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from simulations.kfo import kfo_transform
from simulations.maml import GradientTransform, InnerLoop, Params, initial_params, task_losses
from simulations.statistics import Estimate
from simulations.tasks import make_generator
from simulations.vision import distributed
from simulations.vision.convnet import ConvNet, default_width, standard_convnet
from simulations.vision.datasets import DATASETS, SPLITS, check_root, load_pool
from simulations.vision.distributed import Ranks
from simulations.vision.episodes import episode_sampler
from theory.ground.atomic_io import atomic_write_bytes
from theory.ground.errors import (
    DatasetError,
    DivergenceError,
    ParameterError,
    UsageError,
    require_int,
    require_real,
    require_seed,
)
from theory.ground.options import Threads, flags, option

CHECKPOINT_FORMAT = "vision-checkpoint-1"
RESUME_MAY_DIFFER = ("threads", "data_root", "device", "iterations", "eval_tasks", "checkpoint",
                     "checkpoint_every_seconds", "checkpoint_every_iterations")  # do not change θ's path


@dataclass(frozen=True)
class VisionConfig(Threads):
    """Meta-train and test one few-shot vision configuration; reports test accuracy ± 95% interval over test
    episodes (600 by default) and the classes per split (`--json`: `test_accuracy`, `ci95`, `classes`, …)."""

    dataset: str = option("digits", "dataset: digits is bundled (the quick path); omniglot, cifarfs and "
                                    "mini-imagenet are read from --data-root", choices=DATASETS)
    data_root: str | None = option(None, "folder holding the dataset files: required for omniglot, cifarfs and "
                                         "mini-imagenet; not with digits, which reads none")
    ways: int = option(5, "N classes per episode")
    shots: int = option(1, "K support images per class")
    query: int = option(15, "Q query images per class (the literature's 15); capped by the smallest class")
    method: str = option("maml", "maml adapts every parameter, anil only the head (weight and bias)",
                         choices=("maml", "anil"))
    linnet_layers: int = option(0, "identity-initialised square layers before the head (LinNet)")
    kfo: bool = option(False, "Kronecker-factored meta-optimizer (linear form) on every adapted parameter")
    depth: int = option(4, "conv blocks: 4 is standard, 2 the shallow failure case")
    width: int | None = option(None, "channels per block (default: 64 for Omniglot, 32 otherwise)")
    inner_steps: int = option(1, "k inner steps, in training and at test (learn2learn: 1)")
    alpha: float = option(0.5, "inner step size α (learn2learn's fast_lr: 0.5)")
    meta_lr: float = option(0.003, "Adam's step size (learn2learn: 0.003)")
    meta_batch: int = option(32, "T episodes per meta-step (learn2learn: 32); under torchrun a multiple of "
                                 "the number of processes")
    iterations: int = option(1000, "meta-steps; the literature trains 60,000, days on a CPU")
    first_order: bool = option(False, "first-order MAML (FOMAML): drop the second-order terms")
    device: str = option("cpu", "torch device of the model and episodes: cpu, cuda or cuda:N")
    seed: int = option(0, "seed of the initialisation, the training episodes and the test episodes")
    eval_tasks: int = option(600, "test episodes behind the reported accuracy (the literature's 600)")
    validation_tasks: int = option(100, "validation episodes per check (0: none)")
    validate_every: int = option(500, "meta-steps between validation checks (0: only at the end)")
    checkpoint: str | None = option(None, "checkpoint file: resumed from if it exists, written while training",
                                    path="file")
    checkpoint_every_seconds: float = option(120.0, "wall-clock seconds between checkpoints",
                                             flag="--checkpoint-every", only_with="checkpoint")
    checkpoint_every_iterations: int = option(0, "also checkpoint every this many meta-steps (0: off)",
                                              only_with="checkpoint")

    def __post_init__(self):
        super().__post_init__()
        if self.dataset not in DATASETS:
            raise ParameterError("dataset", self.dataset, f"one of {', '.join(DATASETS)}")
        if self.method not in ("maml", "anil"):
            raise ParameterError("method", self.method, "'maml' or 'anil'")
        for name, low in [("ways", 2), ("shots", 1), ("query", 1), ("linnet_layers", 0), ("depth", 1),
                          ("inner_steps", 0), ("meta_batch", 1), ("iterations", 0),
                          ("eval_tasks", 2), ("validation_tasks", 0), ("validate_every", 0),
                          ("checkpoint_every_iterations", 0)]:
            require_int(name, getattr(self, name), low)
        require_seed("seed", self.seed)
        if self.width is not None:
            require_int("width", self.width, 1)
        if self.validation_tasks == 1:
            raise ParameterError("validation_tasks", 1, "0 (none) or an integer >= 2")
        for name in ("alpha", "meta_lr", "checkpoint_every_seconds"):
            require_real(name, getattr(self, name), 0.0, strict=True)
        for name in ("kfo", "first_order"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(name, getattr(self, name), "True or False")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError):
            raise ParameterError("device", self.device, "a torch device such as 'cpu' or 'cuda'") from None

    @property
    def inner(self) -> InnerLoop:
        return InnerLoop(self.alpha, self.inner_steps, self.first_order,
                         "all" if self.method == "maml" else "head", "cross_entropy")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def resolve_device(name: str) -> torch.device:
    """torch.device(name), or ParameterError naming 'device' when that device is not available here."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device", name, "'cpu': this machine has no CUDA device")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ParameterError("device", name, f"cuda:0 … cuda:{torch.cuda.device_count() - 1}")
    return device


def build_model(config: VisionConfig, image_shape) -> ConvNet:
    """The seeded conv net of ``config`` for images of (C, H, W); the global RNG is left alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return standard_convnet(config.dataset, config.ways, image_shape, config.depth, config.width,
                                config.linnet_layers)


def run_vision(config: VisionConfig, progress: bool = True, _stop_after: int | None = None,
               ranks: Ranks | None = None) -> dict:
    """Meta-train and test one configuration; a JSON-able report (module doc). ``_stop_after``
    (tests) ends training after that iteration, as an interruption would, and returns early.
    ``ranks``: this process's place in an initialised process group (simulations.vision.distributed):
    the meta-batches and evaluations are split across the ranks; only rank 0 writes checkpoints."""
    device = resolve_device(config.device if ranks is None else ranks.device(config.device))
    pools = {s: load_pool(config.dataset, s, config.data_root) for s in SPLITS}
    smallest = min(len(t) for pool in pools.values() for t in pool.images)
    query = max(1, min(config.query, smallest - config.shots))  # the sampler rejects shots >= smallest
    samplers = {s: episode_sampler(pools[s], config.ways, config.shots, query) for s in SPLITS}
    model = build_model(config, pools["train"].image_shape).to(device)
    state = _State(model, config, device)
    exists = config.checkpoint is not None and os.path.exists(config.checkpoint)
    saved = _read(config) if exists and ranks is None else None
    if ranks is not None:  # rank 0 reads; its contents (or error) go to every rank
        saved = distributed.read_on_main(lambda: _read(config) if exists else None, ranks)
    resumed_from = None if saved is None else _restore(state, saved)
    start, started = state.iteration, time.perf_counter()
    _train(state, config, samplers, progress, _stop_after, ranks)
    train_seconds = time.perf_counter() - started
    if state.iteration < config.iterations:
        return {"stopped_at": state.iteration, "resumed_from": resumed_from}
    started = time.perf_counter()
    test = _accuracy(state, samplers["test"], config.eval_tasks, config.seed, config.meta_batch, ranks)
    done = state.iteration - start
    report = {"test_accuracy": test.mean, "ci95": test.ci95, "test_tasks": test.n,
              "validation_accuracy": state.history["validation"][-1]["accuracy"]
              if state.history["validation"] else None,
              "classes": {s: len(pools[s].classes) for s in SPLITS}, "query_per_class": query,
              "width": config.width or default_width(config.dataset),
              "parameters": sum(p.numel() for p in state.params.values()),
              "transform_parameters": sum(p.numel() for p in state.t_params.values()),
              "config": config.as_dict(), "history": state.history, "resumed_from": resumed_from,
              "train_seconds": train_seconds, "eval_seconds": time.perf_counter() - started,
              "throughput_tasks_per_s": done * config.meta_batch / (train_seconds - state.validation_seconds)
              if done else None}
    return report if ranks is None else report | {"processes": ranks.world}


class _State:
    """What meta-training carries from one iteration to the next (and a checkpoint holds)."""

    def __init__(self, model: ConvNet, config: VisionConfig, device: torch.device):
        self.model, self.config, self.inner = model, config, config.inner
        self.params: Params = initial_params(model)  # θ, on ``device``
        self.transform: GradientTransform | None = None
        if config.kfo:  # φ: identity factors, so an untrained KFO is the plain step
            names = None if config.method == "maml" else list(model.head_names)
            self.transform = kfo_transform(self.params, "linear", names=names, dtype=torch.float32)
        self.t_params: Params = self.transform.params if self.transform is not None else {}  # φ
        self.optimizer = torch.optim.Adam([*self.params.values(), *self.t_params.values()], lr=config.meta_lr)
        self.generator = make_generator(config.seed)  # training episodes; CPU, like the pools
        self.device, self.iteration, self.validation_seconds = device, 0, 0.0
        self.history = {"meta_loss": [], "meta_accuracy": [], "validation": []}


def _train(state: _State, config: VisionConfig, samplers, progress: bool, stop_after: int | None,
           ranks: Ranks | None) -> None:
    """Meta-steps from state.iteration to config.iterations (or stop_after), checkpointing on the way."""
    end = config.iterations if stop_after is None else min(stop_after, config.iterations)
    last_save = time.monotonic()
    bar = tqdm(total=config.iterations, initial=state.iteration, disable=None if progress else True,
               desc=f"{config.dataset} {config.method}", leave=False)
    keep = None if ranks is None else ranks.share(config.meta_batch)  # this rank's episodes
    writes = ranks is None or ranks.is_main
    while state.iteration < end:
        batch = samplers["train"](config.meta_batch, state.generator, keep).to(state.device)
        out = task_losses(state.model, state.params, batch, state.inner, state.transform,
                          with_accuracy=True, with_pre=False)
        loss, accuracy = _meta_gradient(state, out, config.meta_batch, ranks)  # mean_τ L_query,τ(θ'_τ)
        state.optimizer.step()
        state.iteration += 1
        state.history["meta_loss"].append(loss.item())
        state.history["meta_accuracy"].append(accuracy.item())
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        if config.validation_tasks and (state.iteration == config.iterations or (
                config.validate_every and state.iteration % config.validate_every == 0)):
            began = time.perf_counter()
            est = _accuracy(state, samplers["validation"], config.validation_tasks, config.seed,
                            config.meta_batch, ranks)
            state.validation_seconds += time.perf_counter() - began
            state.history["validation"].append({"iteration": state.iteration, "accuracy": est.mean,
                                                "ci95": est.ci95})
        every = config.checkpoint_every_iterations
        if writes and config.checkpoint and (time.monotonic() - last_save >= config.checkpoint_every_seconds
                                             or (every and state.iteration % every == 0)):
            _save(state, config)
            last_save = time.monotonic()
    bar.close()
    if writes and config.checkpoint:
        _save(state, config)


def _meta_gradient(state: _State, out: dict, meta_batch: int, ranks: Ranks | None):
    """θ.grad (and φ.grad) of the meta-batch's mean query loss; (that loss, the mean accuracy)."""
    state.optimizer.zero_grad()
    if ranks is None:
        loss, accuracy = out["post_loss"].mean(), out["post_accuracy"].mean()
        if torch.isfinite(loss):
            loss.backward()
    else:  # this rank's part, then the sum over ranks
        loss, accuracy = distributed.all_reduce_meta_gradients(
            out, meta_batch, [*state.params.values(), *state.t_params.values()])
    if not torch.isfinite(loss):  # the same on every rank
        raise DivergenceError(state.iteration, loss.item())
    return loss, accuracy


def _accuracy(state: _State, sampler, n_tasks: int, seed: int, chunk: int,
              ranks: Ranks | None = None) -> Estimate:
    """Post-adaptation query accuracy on n_tasks episodes from a generator at ``seed``, chunked
    (with ``ranks``, each rank adapts its share of every chunk and the ranks add up the vector)."""
    gen, accuracy = make_generator(seed), torch.zeros(n_tasks)  # (tasks,)
    with torch.no_grad():  # torch.func.grad inside still differentiates the inner loop
        for begin in range(0, n_tasks, chunk):
            size = min(chunk, n_tasks - begin)
            keep = range(size) if ranks is None else ranks.share(size)
            batch = sampler(size, gen, keep).to(state.device)
            if keep:
                out = task_losses(state.model, state.params, batch, state.inner, state.transform,
                                  with_accuracy=True, with_pre=False)
                accuracy[begin + keep.start:begin + keep.stop] = out["post_accuracy"].cpu()
    if ranks is not None:
        accuracy = distributed.sum_over_ranks(accuracy.to(state.device)).cpu()
    return Estimate.from_samples(accuracy)


def _resume_key(config: VisionConfig) -> dict:
    return {k: v for k, v in config.as_dict().items() if k not in RESUME_MAY_DIFFER}


def _save(state: _State, config: VisionConfig) -> None:
    """Write the checkpoint atomically (temporary file in the same folder, then os.replace)."""
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "config": _resume_key(config), "iteration": state.iteration,
                "params": {n: p.detach().cpu() for n, p in state.params.items()},
                "transform_params": {n: p.detach().cpu() for n, p in state.t_params.items()},
                "optimizer": state.optimizer.state_dict(), "generator": state.generator.get_state(),
                "history": state.history}, buffer)
    try:
        atomic_write_bytes(config.checkpoint, buffer.getvalue())
    except OSError as exc:
        raise ParameterError("checkpoint", config.checkpoint,
                             f"a writable path ({exc.strerror or exc})") from None


def _read(config: VisionConfig) -> dict:
    """The checkpoint at config.checkpoint, checked against ``config``; ParameterError if it is unreadable
    or of another run. It holds no process count: a run resumes one written with any number of processes."""
    try:
        saved = torch.load(config.checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, foreign, or not a torch file at all
        raise ParameterError("checkpoint", config.checkpoint,
                             f"a readable checkpoint or a new path ({type(exc).__name__})") from None
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        raise ParameterError("checkpoint", config.checkpoint, f"a {CHECKPOINT_FORMAT} file or a new path")
    mine = _resume_key(config)
    differ = sorted(k for k in mine if saved["config"].get(k) != mine[k])
    if differ:
        raise ParameterError("checkpoint", config.checkpoint,
                             "a checkpoint of this configuration or a new path "
                             f"(it differs in {', '.join(differ)})")
    if saved["iteration"] > config.iterations:
        raise ParameterError("iterations", config.iterations,
                             f"an integer >= {saved['iteration']}, the checkpoint's iteration")
    return saved


def _restore(state: _State, saved: dict) -> int:
    """Load a checkpoint's contents into ``state``; its iteration."""
    with torch.no_grad():
        for group, stored in ((state.params, saved["params"]), (state.t_params, saved["transform_params"])):
            for name, p in group.items():
                p.copy_(stored[name])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.generator.set_state(saved["generator"])
    state.iteration, state.history = saved["iteration"], saved["history"]
    return state.iteration


def run(config: VisionConfig, progress: bool = False) -> dict | None:
    """``run_vision`` for ``paper_repro.py vision``: a divergence becomes a UsageError naming the steps, a missing
    or wrong data root (checked first, before any work) or dataset file one naming --data-root in the dataset's
    words. Under torchrun (WORLD_SIZE set) the run is data-parallel across the processes and only rank 0
    returns the report (the others None: nothing to print)."""
    flag = flags(VisionConfig)
    try:
        _check_data_root(config)
        ranks = distributed.ranks_from_environment()
        if ranks is None:
            return run_vision(config, progress)
        ranks.require_divides(config.meta_batch)
        with distributed.process_group(ranks, resolve_device(ranks.device(config.device))):
            report = run_vision(config, progress and ranks.is_main, ranks=ranks)
        return report if ranks.is_main else None
    except DatasetError as err:  # what was expected where, and how to obtain it
        raise UsageError(f"argument {flag['data_root']}: {err}") from None
    except DivergenceError as err:
        raise UsageError(f"argument {flag['alpha']}: {config.alpha:g} with {flag['meta_lr']} "
                         f"{config.meta_lr:g} makes meta-training diverge ({err}); use smaller steps") from None


def _check_data_root(config: VisionConfig) -> None:
    """The command line's check of --data-root, before any work: given exactly when the dataset reads files, and a
    folder (DatasetError otherwise; the files themselves are checked as the pools load). Not in VisionConfig:
    scripts/paper_runs.py builds configs here for a data root that exists on the machines that run them."""
    if not DATASETS[config.dataset].needs_root and config.data_root is not None:  # it would be ignored
        flag = flags(VisionConfig)
        raise UsageError(f"argument {flag['data_root']}: not with {flag['dataset']} {config.dataset} "
                         f"({config.dataset} reads no files)")
    check_root(config.dataset, config.data_root)


def format_report(report: dict) -> str:
    """A few human-readable lines for the command line."""
    c = report["config"]
    extras = (f" + LinNet({c['linnet_layers']})" if c["linnet_layers"] else "") + (" + KFO" if c["kfo"] else "")
    head = (f"{c['dataset']} {c['ways']}-way {c['shots']}-shot {c['method'].upper()}{extras}, "
            f"conv {c['depth']}×{report['width']}, "
            f"{c['iterations']} meta-steps of {c['meta_batch']} episodes")
    tput = report["throughput_tasks_per_s"]
    return "\n".join([
        head,
        f"  test accuracy {100 * report['test_accuracy']:.2f}% ± {100 * report['ci95']:.2f}% "
        f"(95% interval, {report['test_tasks']} test episodes, "
        f"{report['query_per_class']} queries per class)",
        "  classes: " + ", ".join(f"{s} {n}" for s, n in report["classes"].items()),
        f"  training {report['train_seconds']:.1f} s"
        + (f" ({tput:.1f} episodes/s)" if tput and math.isfinite(tput) else "")
        + f", evaluation {report['eval_seconds']:.1f} s"])
