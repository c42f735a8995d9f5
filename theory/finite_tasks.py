"""MAML meta-trained on a finite set of tasks (Bernacchia, ICLR 2021): the initialisation and its test loss.

Setting: m training tasks w_i = w₀ + u_i, u_i ~ N(0, V·I_d); task i has n_t support points (X_t,i, y_t,i)
and n_v query points (X_v,i, y_v,i), x ~ N(0, I_d), y = w_iᵀx + ε, ε ~ N(0, s²). One inner step of size α_t
(any sign) at training, ω'_i = ω − (α_t/n_t) X_t,iᵀ(X_t,i ω − y_t,i); the empirical MAML objective

    J(ω) = (1/m) Σ_i (1/(2 n_v)) ‖y_v,i − X_v,i ω'_i‖² = (1/(2 m n_v)) ‖b − A ω‖²,
    A_i = X_v,i (I − α_t Ŝ_i),  Ŝ_i = X_t,iᵀX_t,i / n_t,  b_i = y_v,i − (α_t/n_t) X_v,i X_t,iᵀ y_t,i,

is linear least squares in ω (A stacks the m blocks, N = m·n_v rows). Its minimiser nearest ω₀ (the limit of
gradient descent from ω₀; unique when rank A = d) is ω* = ω₀ + A⁺(b − A ω₀)   (derived here).

Test: a fresh task, n_r support points, one step α_r > 0. Given ω* the expected test loss is exactly the
one-step closed form of theory.shallow_maml at θ = ω* (per-example ½ squared error, noise included):
with Σx = I it is L_test(ω*) = ½ h_r (‖ω* − w₀‖² + dV) + ½ s²(1 + α_r² d/n_r), h_r = (1 − α_r)² + α_r²(d + 1)/n_r.
The expectation over training sets is a Monte-Carlo average of that exact value (simulations.experiments).

Approximation (derived here, not exact; overparameterised d > N + 1): with δ₀ = ω₀ − w₀ and
h_t = (1 − α_t)² + α_t²(d + 1)/n_t = E tr(I − α_tŜ)²/d,

    E‖ω* − w₀‖² ≈ (1 − N/d) ‖δ₀‖² + N V (d − n_v − 1)/(d − N − 1) + N s² (1 + α_t² d/n_t) / (h_t (d − N − 1)).

The first term is exact (A's law is invariant under right rotations, so E[A⁺A] = (N/d) I). The other two
are E tr((AAᵀ)⁻¹ D) with D = blockdiag(V A_iA_iᵀ + s²(I + (α_t²/n_t) X_v,i Ŝ_i X_v,iᵀ)), evaluated as if the
rows of A were isotropic Gaussian with scale h_t (Wishart: E tr G⁻¹ = N/(d − N − 1); block Schur complements
for the V term); both are exact at α_t = 0. Its leading order in 1/d, (1 − N/d)‖δ₀‖² + N V +
N s²(1 + α_t² d/n_t)/(d h_t), has the structure of Bernacchia's overparameterised result (written here from
its derivation, not copied from the paper); that form is about 10% low at the paper's d = 60, while the one
above is within about 1.5% of 10,000-run Monte-Carlo means over α_t ∈ [-1.8, 0.6] there.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.ground.errors import ParameterError, require_int, require_real
from theory.ground.memory import require_square_matrices_fit
from theory.shallow_maml import post_adaptation_loss, quadratic_coefficients
from theory.task_family import LinearTaskFamily


@dataclass(frozen=True)
class TaskSets:
    """The training setting of the module doc, validated once: m tasks w_i = w₀ + u_i, u_i ~ N(0, V·I_d), each with
    n_t support and n_v query points, Σx = I, label noise s² (what the approximation and the samplers take)."""

    dim: int  # d
    tasks: int  # m
    train_support: int  # n_t
    train_query: int  # n_v
    noise_var: float = 0.0  # s²
    task_var: float = 0.0  # V

    def __post_init__(self):
        for name in ("dim", "tasks", "train_support", "train_query"):
            require_int(name, getattr(self, name), 1)
        for name in ("noise_var", "task_var"):
            require_real(name, getattr(self, name), 0.0)


def maml_least_squares(x_support, y_support, x_query, y_query, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) with J(ω) = (1/(2 m n_v)) ‖b − Aω‖² (module doc); leading axes (runs, …) are batched.

    Shapes: x_support (…, m, n_t, d), y_support (…, m, n_t), x_query (…, m, n_v, d), y_query (…, m, n_v);
    returns A (…, m·n_v, d) and b (…, m·n_v).
    """
    alpha = require_real("train_alpha", alpha)
    xs, ys, xq, yq = (np.asarray(a, float) for a in (x_support, y_support, x_query, y_query))
    n_t = xs.shape[-2]
    cross = xq @ np.swapaxes(xs, -1, -2) / n_t  # X_v X_tᵀ / n_t, (…, m, n_v, n_t)
    a = xq - alpha * cross @ xs  # X_v (I − αŜ), (…, m, n_v, d)
    b = yq - alpha * (cross @ ys[..., None])[..., 0]  # (…, m, n_v)
    return a.reshape(*a.shape[:-3], -1, a.shape[-1]), b.reshape(*b.shape[:-2], -1)


def empirical_maml_loss(omega, x_support, y_support, x_query, y_query, alpha: float) -> np.ndarray:
    """J(ω) = (1/(2 m n_v)) ‖b − Aω‖², batched over leading axes of the data (ω (…, d))."""
    a, b = maml_least_squares(x_support, y_support, x_query, y_query, alpha)
    residual = b - (a @ np.asarray(omega, float)[..., None])[..., 0]  # (…, N)
    return 0.5 * np.mean(residual**2, axis=-1)


def meta_trained_init(x_support, y_support, x_query, y_query, alpha: float, init) -> np.ndarray:
    """ω* = ω₀ + A⁺(b − Aω₀): the minimiser of J nearest ω₀ (gradient descent's limit from ω₀); (…, d)."""
    a, b = maml_least_squares(x_support, y_support, x_query, y_query, alpha)
    init = np.broadcast_to(np.asarray(init, float), (*a.shape[:-2], a.shape[-1]))  # (…, d)
    residual = b - (a @ init[..., None])[..., 0]  # (…, N)
    return init + (np.linalg.pinv(a) @ residual[..., None])[..., 0]


def evaluation_family(dim: int, test_support: int, noise_var: float, task_var: float, task_mean=None,
                query: int = 50) -> LinearTaskFamily:
    """The test tasks: Σx = I, w ~ N(w₀, V·I), n_r support points (``query`` matters only to simulations)."""
    require_real("task_var", task_var, 0.0)
    dim = require_square_matrices_fit("dim", require_int("dim", dim, 1))  # before the d × d factor below
    return LinearTaskFamily(dim, test_support, query, noise_var, task_mean=task_mean,
                            task_factor=np.sqrt(task_var) * np.eye(dim))


def expected_test_loss(family: LinearTaskFamily, omega, test_alpha: float) -> np.ndarray | float:
    """E[L_test | ω] = shallow_maml.post_adaptation_loss(family, ω, α_r), for one ω (d,) or a batch (…, d).

    A batch with Σx = I uses the exact isotropy of the form, L(w₀ + δ) = L(w₀) + ‖δ‖² (L(w₀ + e) − L(w₀))
    for a unit vector e (the loss is ½ tr(M C) + const with M = h_r I); other families loop over ω.
    """
    omega = np.asarray(omega, float)
    if omega.ndim == 1:
        return post_adaptation_loss(family, omega, test_alpha)
    if not family.isotropic_inputs:
        flat = omega.reshape(-1, family.dim)
        return np.array([post_adaptation_loss(family, w, test_alpha) for w in flat]).reshape(omega.shape[:-1])
    base = post_adaptation_loss(family, family.task_mean, test_alpha)
    unit = family.task_mean + np.eye(family.dim)[0]
    slope = post_adaptation_loss(family, unit, test_alpha) - base
    return base + slope * np.sum((omega - family.task_mean) ** 2, axis=-1)


def best_test_step(family: LinearTaskFamily, omegas) -> tuple[float, float]:
    """(α_r*, mean loss there) minimising the mean over ω ∈ ``omegas`` of the one-step test loss.

    Each loss is ½(a₀ − 2αa₁ + α²a₂) + ½s² (shallow_maml.quadratic_coefficients at θ = ω), so the mean is
    minimised exactly at α_r* = Σa₁ / Σa₂, with value ½(ā₀ − ā₁²/ā₂) + ½s².
    """
    coefficients = np.array([quadratic_coefficients(family, w) for w in np.atleast_2d(omegas)])  # (R, 3)
    a0, a1, a2 = coefficients.mean(axis=0)
    return float(a1 / a2), float(0.5 * (a0 - a1**2 / a2) + 0.5 * family.noise_var)


def approximate_init_error(sets: TaskSets, init_offset: float, train_alpha: float) -> float | None:
    """The approximation of E‖ω* − w₀‖² in the module doc (None unless d > m·n_v + 1: not derived there)."""
    d, n_v, n_t, task_var, noise_var = sets.dim, sets.train_query, sets.train_support, sets.task_var, sets.noise_var
    big_n = sets.tasks * n_v
    if d <= big_n + 1:
        return None
    a = train_alpha
    h_t = (1 - a) ** 2 + a**2 * (d + 1) / n_t
    offset = (1 - big_n / d) * init_offset**2
    signal = big_n * task_var * (d - n_v - 1) / (d - big_n - 1)
    noise = big_n * noise_var * (1 + a**2 * d / n_t) / (h_t * (d - big_n - 1))
    return float(offset + signal + noise)


def approximate_test_loss(family: LinearTaskFamily, test_alpha: float, init_error: float | None) -> float | None:
    """E L_test ≈ L_test at any ω with ‖ω − w₀‖² = the approximate E‖ω* − w₀‖² (exact map, approximate input)."""
    if init_error is None:
        return None
    if not family.isotropic_inputs:
        raise ParameterError("family", "non-isotropic inputs", "Σx = I (the setting of this approximation)")
    point = family.task_mean + np.sqrt(init_error) * np.eye(family.dim)[0]
    return float(post_adaptation_loss(family, point, test_alpha))
