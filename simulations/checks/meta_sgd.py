"""verify checks of theory.meta_sgd: the literal per-parameter step, the exact loss at given step sizes against
Monte-Carlo, the best diagonal against meta-trained Meta-SGD, and the diagonal case where it is the best
preconditioner."""
from __future__ import annotations

import numpy as np
import torch

from simulations.checks.fixtures import SUBSPACE, general_family
from simulations.checks.rules import Check, declare, identity_check, interval_check
from simulations.maml import InnerLoop, adapt
from simulations.models import shallow_linear
from simulations.transforms import diagonal_preconditioner
from simulations.twins.meta_sgd import estimate_meta_sgd_post_adaptation_loss, estimate_meta_trained_meta_sgd_loss
from theory import meta_sgd, preconditioned_maml
from theory.task_family import LinearTaskFamily

# Adam 0.01, cosine decay, meta-batch 128, α = 0.3 (p* ≈ 1 per coordinate, where p starts): at 300 steps the
# Monte-Carlo loss of the trained (θ, p) sat 0.15 standard errors from L*_diag (15,000 evaluation tasks)
META_ITERATIONS = 700
EVAL_TASKS = 50_000  # se ≈ 1% of the loss; Meta-SGD's gain over the best plain step is 6% here
ALPHA = 0.3


def check_diagonal_step(scale: float) -> Check:
    d, k, alpha = 7, 4, 0.3
    rng = np.random.default_rng(41)
    x, y, theta, p = rng.standard_normal((k, d)), rng.standard_normal(k), rng.standard_normal(d), rng.random(d) + 0.5
    model = shallow_linear(d)
    transform = diagonal_preconditioner(model.head_name, d).with_params({"step_sizes": torch.as_tensor(p)})
    literal = adapt(model, {model.head_name: torch.as_tensor(theta).reshape(1, d)}, torch.as_tensor(x),
                    torch.as_tensor(y), InnerLoop(alpha), transform)[model.head_name].numpy().ravel()  # (d,)
    grad = x.T @ (x @ theta - y) / k  # ĝ, (d,)
    return identity_check("shallow d=7, K=4, α=0.3, random X, y, θ, p: autograd step vs θ − α p∘ĝ",
                          theta - alpha * p * grad, literal)


def check_post_loss(scale: float) -> Check:
    family, theta = general_family()
    p = 0.5 + np.random.default_rng(42).random(6)
    est = estimate_meta_sgd_post_adaptation_loss(family, p, 0.4, theta, int(100_000 * scale), seed=43)
    return interval_check("d=6, K=4, random Σx, Σw, μ, θ, s²=0.25, random p, α=0.4",
                          meta_sgd.meta_sgd_post_adaptation_loss(family, p, 0.4, theta), est)


def check_meta_trained(scale: float) -> Check:
    family = LinearTaskFamily.subspace(**SUBSPACE, seed=5)
    iterations = int(META_ITERATIONS * scale) + 100
    est, _ = estimate_meta_trained_meta_sgd_loss(family, ALPHA, iterations, int(EVAL_TASKS * scale), seed=44)
    return interval_check(f"d=20, K=5, r=2 (rotated Σw), α={ALPHA}: Meta-SGD meta-trains θ and p "
                          f"({iterations} Adam steps) vs L*_diag", meta_sgd.meta_sgd_best_post_loss(family), est)


def check_diagonal_covariances(scale: float) -> Check:
    rng = np.random.default_rng(45)
    family = LinearTaskFamily.from_covariances(6, 3, 10, task_cov=np.diag(rng.random(6) * [2, 1, 1, 0.5, 0, 0]),
                                               input_cov=np.diag(0.5 + rng.random(6)), noise_var=0.3)
    return identity_check("d=6, K=3, s²=0.3, diagonal Σx and Σw (rank 4): L*_diag vs the optimal full P's L*",
                          meta_sgd.meta_sgd_best_post_loss(family),
                          preconditioned_maml.preconditioned_best_post_loss(family))


CHECKS = declare("meta_sgd", {
    "diagonal_step": check_diagonal_step,
    "post_loss": check_post_loss,
    "meta_trained": check_meta_trained,
    "diagonal_covariances": check_diagonal_covariances,
})
