"""verify checks of theory.wishart_words: words in Ŝ and fixed matrices, and the exact k-step loss for an
anisotropic Σx, against Monte-Carlo (the literal matrix product; the literal inner loop)."""
from __future__ import annotations

import numpy as np

from simulations.checks.fixtures import random_spd
from simulations.checks.rules import Check, declare, interval_check
from simulations.twins.shallow_maml import estimate_post_adaptation_loss
from simulations.twins.wishart_words import estimate_word_moment, estimate_word_trace_moment
from theory import wishart_words
from theory.task_family import LinearTaskFamily

LOSS_ALPHA = 0.1  # α·λmax(Ŝ): median 0.5, below 2 in all of 200,000 draws (d=6, K=8), so ‖I − αŜ‖ ≤ 1: not heavy-tailed


def anisotropic_family() -> tuple[LinearTaskFamily, np.ndarray]:
    """d = 6, K = 8, s² = 0.25 with random SPD Σx, random Σw and μ, and an initialisation θ ≠ μ (fixed seed)."""
    rng = np.random.default_rng(23)
    sigma_x, sigma_w = random_spd(6, rng), random_spd(6, rng)
    family = LinearTaskFamily.from_covariances(6, 8, 10, task_cov=sigma_w, input_cov=sigma_x,
                                               task_mean=rng.standard_normal(6), noise_var=0.25)
    return family, 0.5 * rng.standard_normal(6)


def check_word_moment(scale: float) -> Check:
    rng = np.random.default_rng(31)
    sigma, probe = random_spd(3, rng), rng.standard_normal((3, 3))
    mats = [rng.standard_normal((3, 3)) for _ in range(3)]
    theory = float(np.trace(probe @ wishart_words.word_moment(sigma, mats, 5)))
    est = estimate_word_moment(sigma, mats, 5, probe, int(200_000 * scale), seed=7)
    return interval_check("d=3, K=5, random Σ, A₁, A₂, A₃, probe B: "
                          "tr(B·E[ŜA₁ŜA₂ŜA₃Ŝ]) by 105 matchings", theory, est)


def check_word_trace(scale: float) -> Check:
    rng = np.random.default_rng(37)
    sigma = random_spd(5, rng)
    mats = [rng.standard_normal((5, 5)) for _ in range(3)]
    theory = wishart_words.word_trace_moment(sigma, mats, 4)
    est = estimate_word_trace_moment(sigma, mats, 4, int(200_000 * scale), seed=8)
    return interval_check("d=5, K=4, random Σ, A₁, A₂, A₃: E tr(ŜA₁ŜA₂ŜA₃)",
                          theory, est)


def _check_loss(steps: int, scale: float) -> Check:
    family, theta = anisotropic_family()
    theory = wishart_words.anisotropic_post_adaptation_loss(family, theta, LOSS_ALPHA, steps)
    est = estimate_post_adaptation_loss(family, theta, LOSS_ALPHA, steps, int(100_000 * scale), seed=10 + steps)
    return interval_check(f"d=6, K=8, random SPD Σx, Σw, μ≠0, θ≠μ, s²=0.25, α={LOSS_ALPHA} (well inside the stable "
                          f"range), k={steps} literal inner steps", theory, est)


def check_loss_two_steps(scale: float) -> Check:
    return _check_loss(2, scale)


def check_loss_three_steps(scale: float) -> Check:
    return _check_loss(3, scale)


CHECKS = declare("wishart_words", {
    "word_moment_m4": check_word_moment,
    "word_trace_m3": check_word_trace,
    "anisotropic_loss_k2": check_loss_two_steps,
    "anisotropic_loss_k3": check_loss_three_steps,
})
