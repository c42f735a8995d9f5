"""N-way K-shot episodes drawn from a ClassPool, as TaskBatches for simulations.training.meta_train.

One episode (task τ): draw N of the pool's classes without replacement, in a uniformly random
order, and give the j-th drawn class the label j; so the labelling is a fresh uniformly random
bijection per task and no class keeps a label across tasks (a model cannot memorise labels).
From each drawn class draw K + Q of its images without replacement: the first K are its support
images, the other Q its query images, so support and query never share an image. Within a set
the examples are ordered by label (class-major), which a per-example network cannot see.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from simulations.tasks import TaskBatch
from simulations.vision.datasets import ClassPool
from theory.ground.errors import ParameterError, require_int


def sample_episodes(pool: ClassPool, ways: int, shots: int, query: int, n_tasks: int,
                    gen: torch.Generator, keep: range | None = None) -> TaskBatch:
    """``n_tasks`` N-way (``ways``) K-shot (``shots``) episodes with Q (``query``) query images per class.

    Returns x_support (T, N·K, C, H, W) float32, y_support (T, N·K) int64 in 0..N−1, x_query
    (T, N·Q, C, H, W), y_query (T, N·Q); weights None. Deterministic given ``gen``'s state.
    ``keep`` (a range within 0..n_tasks−1) returns only those episodes (T = len(keep), possibly 0),
    with the generator advanced exactly as for all n_tasks: the parts kept by a partition of
    0..n_tasks−1 are, together, the episodes drawn without ``keep`` (a data-parallel rank's share).
    """
    ways, shots, query = _check(pool, ways, shots, query)
    n_tasks = require_int("n_tasks", n_tasks, 1)
    keep = range(n_tasks) if keep is None else keep
    if keep.step != 1 or not 0 <= keep.start <= keep.stop <= n_tasks:
        raise ParameterError("keep", keep, f"a range of step 1 within range(0, {n_tasks})")
    per_class = shots + query
    picks = []
    for task in range(n_tasks):
        drawn = torch.randperm(len(pool.classes), generator=gen)[:ways]  # (N,): class drawn[j] gets label j
        for c in drawn.tolist():
            images = pool.images[c]  # (n_c, C, H, W)
            chosen = torch.randperm(len(images), generator=gen)[:per_class]  # drawn even when not kept
            if task in keep:
                picks.append(images[chosen])  # (K+Q, C, H, W)
    kept = len(keep)
    x = (torch.stack(picks) if picks else pool.images[0].new_empty((0, per_class, *pool.image_shape))
         ).view(kept, ways, per_class, *pool.image_shape)  # (T, N, K+Q, C, H, W)
    y = torch.arange(ways).view(1, ways, 1).expand(kept, ways, per_class)  # (T, N, K+Q)

    def flat(t: torch.Tensor) -> torch.Tensor:  # (T, N, m, ...) -> (T, N·m, ...)
        return t.reshape(kept, -1, *t.shape[3:])

    return TaskBatch(flat(x[:, :, :shots]), flat(y[:, :, :shots]), flat(x[:, :, shots:]), flat(y[:, :, shots:]))


def episode_sampler(pool: ClassPool, ways: int, shots: int, query: int
                    ) -> Callable[..., TaskBatch]:
    """A sampler (n_tasks, generator, keep=None) -> TaskBatch of fixed N-way K-shot episodes, as
    meta_train takes (``keep``: sample_episodes). The parameters are checked here, once, so an
    impossible request fails before training starts.
    """
    ways, shots, query = _check(pool, ways, shots, query)

    def sample(n_tasks: int, gen: torch.Generator, keep: range | None = None) -> TaskBatch:
        return sample_episodes(pool, ways, shots, query, n_tasks, gen, keep)

    sample.__doc__ = f"{ways}-way {shots}-shot episodes ({query} query images per class) from {pool.name}."
    return sample


def _check(pool: ClassPool, ways, shots, query) -> tuple[int, int, int]:
    """ways ≤ classes in the pool, shots + query ≤ images in its smallest class, all ≥ 1."""
    smallest = min(len(t) for t in pool.images)
    ways = _at_most("ways", ways, len(pool.classes), f"the classes in {pool.name}")
    shots = _at_most("shots", shots, smallest - 1,
                     f"shots + query <= {smallest}, the images in the smallest class of {pool.name}")
    query = _at_most("query", query, smallest - shots,
                     f"shots + query <= {smallest}, the images in the smallest class of {pool.name}")
    return ways, shots, query


def _at_most(name: str, value, maximum: int, why: str) -> int:
    valid = f"an integer >= 1 and <= {maximum} ({why})"
    try:
        value = require_int(name, value, 1, maximum)
    except (ParameterError, TypeError, ValueError):
        raise ParameterError(name, value, valid) from None
    return value
