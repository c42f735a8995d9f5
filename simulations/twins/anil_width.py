"""Monte-Carlo twins of theory.anil_width: ANIL on a real two-layer linear net f(x) = vᵀW x of width h.

The net is simulations.models.deep_linear(d, 2, h): ``layers.0.weight`` is W (h, d), ``layers.1.weight``
the head vᵀ (1, h), ``model.head_name``. The inner loop is the real functional one
(simulations.maml, InnerLoop(α, adapt="head")): autograd steps the head on the support set, the
loss is measured on fresh query points. Nothing here forms P = WᵀW or the closed-form loss.
"""
from __future__ import annotations

import numpy as np
import torch

from simulations.maml import InnerLoop, task_losses
from simulations.models import LinearChain, deep_linear
from simulations.statistics import Estimate
from simulations.tasks import make_generator, sample_regression_tasks
from simulations.training import MetaTrainResult, evaluate, meta_train
from theory.ground.errors import ParameterError
from theory.task_family import LinearTaskFamily

CHUNK = 20_000  # tasks per vmapped call: bounds memory at about CHUNK·(K+Q)·d floats


def anil_net(family: LinearTaskFamily, width: int, seed: int = 0) -> LinearChain:
    """The two-layer linear net x ↦ vᵀW x, W (h, d), float64, PyTorch's default init from ``seed``."""
    return deep_linear(family.dim, 2, width, seed=seed)


def anil_params(model: LinearChain, w, v0) -> dict[str, torch.Tensor]:
    """The net's parameters set to (W, v₀): {'layers.0.weight': W (h, d), head: v₀ᵀ (1, h)}."""
    body = torch.as_tensor(np.asarray(w, float))  # (h, d)
    head = torch.as_tensor(np.asarray(v0, float)).reshape(1, -1)  # (1, h)
    names = [n for n, _ in model.named_parameters()]
    if len(names) != 2 or body.shape != model.layers[0].weight.shape or head.shape != model.layers[1].weight.shape:
        raise ParameterError("w", (tuple(body.shape), tuple(head.shape)),
                             f"W {tuple(model.layers[0].weight.shape)} and v0 of length {model.widths[1]}")
    return {names[0]: body, model.head_name: head}


def estimate_anil_post_adaptation_loss(family: LinearTaskFamily, w, v0, alpha: float, n_tasks: int = 100_000,
                                       seed: int = 0) -> Estimate:
    """Twin of theory.anil_width.anil_post_adaptation_loss: query loss after one literal head step."""
    model = anil_net(family, np.shape(w)[0])
    params = anil_params(model, w, v0)
    inner = InnerLoop(alpha, adapt="head")
    gen = make_generator(seed)
    parts = []
    with torch.no_grad():  # torch.func.grad inside still differentiates the support loss
        for start in range(0, n_tasks, CHUNK):
            batch = sample_regression_tasks(family, min(CHUNK, n_tasks - start), gen)
            parts.append(task_losses(model, params, batch, inner, with_pre=False)["post_loss"])
    return Estimate.from_samples(torch.cat(parts))


def meta_train_anil(family: LinearTaskFamily, width: int, alpha: float, iterations: int, meta_batch: int = 128,
                    meta_lr: float = 0.01, seed: int = 0) -> tuple[LinearChain, MetaTrainResult]:
    """Meta-train ANIL (W and v₀, head-only inner step α) with Adam and cosine decay; the net and the result."""
    model = anil_net(family, width, seed)
    result = meta_train(model, lambda n, gen: sample_regression_tasks(family, n, gen), InnerLoop(alpha, adapt="head"),
                        iterations, meta_batch=meta_batch, meta_lr=meta_lr, seed=seed, lr_decay=True)
    return model, result


def estimate_meta_trained_anil_loss(family: LinearTaskFamily, width: int, alpha: float, iterations: int,
                                    n_tasks: int, seed: int = 0, meta_batch: int = 128,
                                    meta_lr: float = 0.01) -> Estimate:
    """Twin of theory.anil_width.anil_best_post_loss: the post-adaptation loss of meta-trained ANIL on fresh tasks."""
    model, result = meta_train_anil(family, width, alpha, iterations, meta_batch, meta_lr, seed)
    return evaluate(model, result.params, lambda n, gen: sample_regression_tasks(family, n, gen),
                    InnerLoop(alpha, adapt="head"), n_tasks, seed=seed + 1, chunk=CHUNK)["post_loss"]
