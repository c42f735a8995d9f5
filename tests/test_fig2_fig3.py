"""theory.scalar_deep against its twins, and the parts of figures 2 and 3 the smoke test does not reach.

* the sympy update (w₁', w₂') against a literal autograd step on both layers (float64 identity);
* the exact depth-2 meta-objective against functional MAML on deep_linear(1, 2, 1) (Monte-Carlo
  interval, z = 3.29), against its α → 0 limits (the pre-adaptation loss, and the shallow
  model's slope scaled by w₁² + w₂²), and its minima (stationary, symmetric);
* figure 3 reports a diverged run as a missing point with a note, never as data.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import sympy as sp
import torch

from figures import fig3_depth_width as fig3
from simulations.maml import InnerLoop, task_losses
from simulations.models import deep_linear
from simulations.statistics import Estimate
from simulations.tasks import sample_regression_tasks
from tests.helpers import assert_close, assert_within_ci
from theory import scalar_deep as sd
from theory import shallow_maml as sh
from theory.errors import DivergenceError, ParameterError
from theory.task_family import LinearTaskFamily

IDENTITY_TOL = 1e-10
# (w₁, w₂, α, K, μ, σ²): the figure's minimum, a mixed-sign point, a large step, and K = 2 (heavy tails)
POINTS = [(1.83, 0.61, 0.2, 5, 1.0, 1.0), (0.5, -1.2, 0.4, 3, 1.0, 0.5), (1.0, 1.0, 0.7, 10, -0.5, 2.0),
          (2.0, 0.3, 0.3, 2, 1.0, 1.0)]


def _family(support: int, mu: float, task_var: float, query: int = 10) -> LinearTaskFamily:
    return LinearTaskFamily(1, support, query, task_mean=np.array([mu]),
                            task_factor=np.array([[task_var**0.5]]))


def _depth2_estimate(w1, w2, alpha, support, mu, task_var, n_tasks: int, seed: int) -> Estimate:
    """Twin: query loss after one literal functional-MAML step on both layers of deep_linear(1, 2, 1)."""
    model = deep_linear(1, 2, 1)
    params = {"layers.0.weight": torch.tensor([[w1]], dtype=torch.float64),
              "layers.1.weight": torch.tensor([[w2]], dtype=torch.float64)}
    batch = sample_regression_tasks(_family(support, mu, task_var), n_tasks, seed)
    with torch.no_grad():
        out = task_losses(model, params, batch, InnerLoop(alpha), with_pre=False)
    return Estimate.from_samples(out["post_loss"])


# -- the exact update --------------------------------------------------------------------------
def test_update_matches_a_literal_autograd_step():
    w1_new, w2_new = sd.depth2_scalar_update_symbolic()
    s_hat, w_tau = sp.symbols("s_hat w_tau", real=True)
    update = sp.lambdify((sd.W1, sd.W2, sd.ALPHA, s_hat, w_tau), (w1_new, w2_new), "math")
    rng = np.random.default_rng(0)
    for _ in range(20):
        w1, w2, w_tau_v, alpha = rng.standard_normal(4)
        x = torch.tensor(rng.standard_normal(5))  # (K,)
        layers = [torch.tensor(v, requires_grad=True) for v in (w1, w2)]
        loss = 0.5 * ((layers[1] * layers[0] * x - w_tau_v * x) ** 2).mean()  # ½ mean squared error
        grads = torch.autograd.grad(loss, layers)
        literal = [(p - alpha * g).item() for p, g in zip(layers, grads)]
        s = (x**2).mean().item()
        assert_close(update(w1, w2, alpha, s, w_tau_v), literal, IDENTITY_TOL, "(w1', w2')")
        g = s * (w1 * w2 - w_tau_v)  # W' = W − α(w₁² + w₂²)g + α²w₁w₂g² (module doc)
        closed = w1 * w2 - alpha * (w1**2 + w2**2) * g + alpha**2 * w1 * w2 * g**2
        assert_close(literal[0] * literal[1], closed, IDENTITY_TOL, "W'")


# -- the meta-objective --------------------------------------------------------------------------
@pytest.mark.parametrize("point", POINTS)
def test_meta_objective_inside_the_monte_carlo_interval(point):
    closed = sd.depth2_scalar_meta_objective(*point)
    assert_within_ci(closed, _depth2_estimate(*point, n_tasks=200_000, seed=11), f"L{point}")


def test_monte_carlo_interval_shrinks_as_one_over_root_n():
    # K = 10, small α: light tails. At K = 5 the sample stderr of 20,000 tasks itself is noisy (terms up to
    # ŝ⁸e⁸ in the variance), so its ratio strays from 4 on about one seed in eight.
    point = (1.0, 1.0, 0.1, 10, 1.0, 1.0)
    closed = sd.depth2_scalar_meta_objective(*point)
    small = _depth2_estimate(*point, n_tasks=20_000, seed=3)
    large = _depth2_estimate(*point, n_tasks=320_000, seed=4)
    for est in (small, large):
        assert_within_ci(closed, est, f"L{point}, n = {est.n}")
    assert 3.4 < small.stderr / large.stderr < 4.6  # 16× the samples: about 4× narrower


def test_alpha_zero_is_the_pre_adaptation_loss_and_the_slope_is_the_shallow_one_scaled():
    rng = np.random.default_rng(1)
    expr = sd.depth2_scalar_meta_objective_expression()
    slope = sp.lambdify((sd.W1, sd.W2, sd.K_SYM, sd.MU, sd.TASK_VAR),
                        sp.diff(expr, sd.ALPHA).subs(sd.ALPHA, 0))
    for _ in range(10):
        w1, w2, mu = rng.standard_normal(3)
        k, var = int(rng.integers(1, 10)), float(rng.uniform(0.1, 2))
        family = _family(k, mu, var)
        assert_close(sd.depth2_scalar_meta_objective(w1, w2, 0.0, k, mu, var),
                     sh.pre_adaptation_loss(family, np.array([w1 * w2])), 1e-12, "L at α = 0")
        _, a1, _ = sh.quadratic_coefficients(family, np.array([w1 * w2]))  # shallow: dL/dα at 0 = −a₁
        assert_close(slope(w1, w2, k, mu, var), -(w1**2 + w2**2) * a1, 1e-12, "dL/dα at α = 0")


def test_minima_are_stationary_symmetric_and_below_the_shallow_model_at_the_same_step():
    alpha, k, mu, var = 0.2, 5, 1.0, 1.0
    minima = sd.depth2_scalar_minima(alpha, k, mu, var)
    assert len(minima) == 4
    points = {(round(a, 6), round(b, 6)) for a, b, _ in minima}
    assert points == {(b, a) for a, b in points} == {(-a, -b) for a, b in points}
    h = 1e-5
    for w1, w2, value in minima:
        f = lambda a, b: sd.depth2_scalar_meta_objective(a, b, alpha, k, mu, var)  # noqa: E731
        grad = [(f(w1 + h, w2) - f(w1 - h, w2)) / (2 * h), (f(w1, w2 + h) - f(w1, w2 - h)) / (2 * h)]
        assert np.max(np.abs(grad)) < 1e-6, (w1, w2, grad)
        assert_close(f(w1, w2), value, 1e-12, "value at the minimum")
    family = _family(k, mu, var)
    assert minima[0][2] < sh.post_adaptation_loss(family, np.array([mu]), alpha)  # depth learns its step
    assert minima[0][2] >= sh.best_post_adaptation_loss(family) - 1e-12  # but no better than the best α


def test_grid_evaluation_and_bad_input():
    grid = np.linspace(-1, 1, 5)
    values = sd.depth2_scalar_meta_objective(grid[:, None], grid[None, :], 0.2, 5, 1.0, 1.0)
    assert values.shape == (5, 5)
    one = sd.depth2_scalar_meta_objective(grid[1], grid[3], 0.2, 5, 1.0, 1.0)
    assert_close(values[1, 3], one, 1e-14, "grid")
    for kwargs in ({"support": 0}, {"task_var": -1.0}, {"alpha": float("nan")}):
        args = {"w1": 1.0, "w2": 1.0, "alpha": 0.2, "support": 5, "mu": 1.0, "task_var": 1.0} | kwargs
        with pytest.raises(ParameterError):
            sd.depth2_scalar_meta_objective(**args)


# -- figure 3: divergence is a missing point -----------------------------------------------------
def test_fig3_reports_divergence_as_a_missing_point(monkeypatch):
    real = fig3.meta_train

    def diverge_at_depth_2(model, *args, **kwargs):
        if len(model.layers) == 2:
            raise DivergenceError(7, float("nan"))
        return real(model, *args, **kwargs)

    monkeypatch.setattr(fig3, "meta_train", diverge_at_depth_2)
    config = fig3.Config(dim=6, dims=(6,), depths=(1, 2), widths=(4,), iterations=5, eval_tasks=50, seeds=2)
    results = fig3.compute(config)
    points = fig3.summarize(results)
    missing = [p for p in points if p["depth"] == 2]
    assert missing and all(p["post_loss"] is None and p["diverged"] == 2 for p in missing)
    assert all("diverged" in p["note"] and "meta-iteration 7" in p["note"] for p in missing)
    assert all(p["post_loss"] is not None for p in points if p["depth"] == 1)
    csv_rows = fig3.rows(results)
    assert all(r["post_loss"] == "" for r in csv_rows if r["panel"] != "theory" and r["depth"] == 2)
    assert "diverged" in fig3.caption(results)
    plt.close(fig3.plot(results))
