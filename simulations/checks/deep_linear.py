"""verify checks of theory.deep_linear: the exact depth-2 step, the implicit preconditioner, the exact
single-layer (ANIL, bottom) steps and the capacity factorisation against the literal autograd step;
the exact full-MAML depth-2 loss against the literal functional inner loop on sampled tasks (three
settings); and deep MAML adapting below the best shallow step (a bound, meta-trained)."""
from __future__ import annotations

import numpy as np

from simulations.checks.fixtures import SUBSPACE, random_net, regression_sampler
from simulations.checks.rules import Check, declare, identity_check, upper_bound_check
from simulations.maml import InnerLoop
from simulations.models import deep_linear as deep_linear_model
from simulations.training import evaluate, meta_train
from simulations.twins.deep_linear import (
    first_order_change,
    literal_layer_step,
)
from theory import deep_linear, shallow_maml
from theory.task_family import LinearTaskFamily


def check_depth2_update(scale: float) -> Check:
    layers, x, y = random_net([5, 4, 1], seed=20)
    g = deep_linear.squared_loss_gradient(deep_linear.end_to_end(layers), x, y)
    return identity_check("d=5, h=4, α=0.7: W2W1 − α(W2W2ᵀG + GW1ᵀW1) + α²GW1ᵀW2ᵀG",
                          deep_linear.depth2_update(layers[0], layers[1], g, 0.7),
                          literal_layer_step(layers, x, y, 0.7).numpy())


def check_implicit_preconditioner(scale: float) -> Check:
    layers, x, y = random_net([6, 5, 3, 4, 1], seed=21)
    g = deep_linear.squared_loss_gradient(deep_linear.end_to_end(layers), x, y)
    closed = deep_linear.preconditioned_step(np.zeros_like(g), g, deep_linear.implicit_preconditioner(layers), 1.0)
    return identity_check("depth 4, widths 6-5-3-4-1: dW'/dα|₀ = −P vec G",
                          closed, first_order_change(layers, x, y, "squared"))


def _single_layer_check(adapt: str, label: str) -> Check:
    layers, x, y = random_net([6, 4, 3, 1], seed=22)
    w = deep_linear.end_to_end(layers)
    g = deep_linear.squared_loss_gradient(w, x, y)
    closed = deep_linear.preconditioned_step(w, g, deep_linear.implicit_preconditioner(layers, adapt), 0.4)
    return identity_check(f"depth 3, α=0.4, only the {adapt} layer adapts",
                          closed, literal_layer_step(layers, x, y, 0.4, adapt=adapt).numpy())


def check_anil_step(scale: float) -> Check:
    return _single_layer_check("head", "anil")


def check_bottom_step(scale: float) -> Check:
    return _single_layer_check("bottom", "bottom_layer")


def check_capacity(scale: float) -> Check:
    w = np.random.default_rng(23).standard_normal((3, 8))
    layers = deep_linear.factorize(w, [3, 5, 4])
    return identity_check("any 3×8 map factorised through widths 3-5-4",
                          deep_linear.end_to_end(layers), w)


def check_deep_beats_shallow(scale: float) -> Check:
    family = LinearTaskFamily.subspace(**SUBSPACE, seed=5)
    alpha = shallow_maml.optimal_step_size(family)
    model = deep_linear_model(family.dim, 2, 16, seed=1)
    result = meta_train(model, regression_sampler(family), InnerLoop(alpha), int(800 * scale) + 100,
                        meta_batch=64, meta_lr=0.01, seed=16, lr_decay=True)
    est = evaluate(model, result.params, regression_sampler(family), InnerLoop(alpha),
                   int(20_000 * scale) + 500, seed=17)["post_loss"]
    return upper_bound_check("d=20, K=5, r=2, α=α*: MAML depth-2 width-16 vs best shallow",
                             shallow_maml.best_post_adaptation_loss(family), est, "deep")


CHECKS = declare("deep_linear", {
    "depth2_exact_update": check_depth2_update,
    "implicit_preconditioner": check_implicit_preconditioner,
    "anil_exact_step": check_anil_step,
    "bottom_layer_exact_step": check_bottom_step,
    "same_function_class": check_capacity,
    "adapts_faster_than_shallow": check_deep_beats_shallow,
})
