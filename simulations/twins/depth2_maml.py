"""Monte-Carlo twin of theory.depth2_maml: the query loss after one literal MAML step on both layers of a depth-2
linear net, on sampled tasks (simulations.maml's functional inner loop; nothing here evaluates the closed form)."""
from __future__ import annotations

import numpy as np
import torch

from simulations.maml import InnerLoop, task_losses
from simulations.models import deep_linear
from simulations.statistics import Estimate
from simulations.tasks import make_generator, sample_regression_tasks
from theory.ground.errors import ParameterError


def estimate_depth2_post_adaptation_loss(family, w1, w2, alpha: float, n_tasks: int, seed: int,
                                         chunk: int = 20_000) -> Estimate:
    """Twin of theory.depth2_maml.depth2_post_adaptation_loss: query loss after one literal MAML step.

    simulations.models.deep_linear(d, 2, h) in float64 with its weights set to (W1 (h, d), w2 (1, h));
    tasks from simulations.tasks.sample_regression_tasks (x ~ N(0, Σx), w_τ ~ N(μ, Σw), noise s²);
    simulations.maml.task_losses with InnerLoop(α) adapts both layers on the K support points by
    functional autograd and measures ½ mean squared error on the Q query points. Tasks are drawn in
    chunks of ``chunk`` from one generator seeded by ``seed``.
    """
    w1 = torch.as_tensor(np.asarray(w1, float))  # (h, d)
    w2 = torch.as_tensor(np.asarray(w2, float)).reshape(1, -1)  # (1, h)
    if w1.ndim != 2 or w1.shape[1] != family.dim or w2.shape[1] != w1.shape[0]:
        raise ParameterError("w1", (tuple(w1.shape), tuple(w2.shape)), f"W1 (h, {family.dim}) and w2 (1, h)")
    model = deep_linear(family.dim, 2, w1.shape[0])
    params = {"layers.0.weight": w1, "layers.1.weight": w2}
    if set(params) != {name for name, _ in model.named_parameters()}:
        raise RuntimeError("simulations.models.deep_linear changed its parameter names")
    gen = make_generator(seed)
    losses = []
    for start in range(0, n_tasks, chunk):
        batch = sample_regression_tasks(family, min(chunk, n_tasks - start), gen)
        with torch.no_grad():
            losses.append(task_losses(model, params, batch, InnerLoop(alpha), with_pre=False)["post_loss"])
    return Estimate.from_samples(torch.cat(losses))
