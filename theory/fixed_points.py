"""Fixed points of MAML, FO-MAML, Reptile and ERM on a mixture of task groups of different hardness.

Setting (derived here; the question is that of Collins, Mokhtari & Shakkottai 2020, Fallah, Mokhtari
& Ozdaglar 2020 and Gao & Sener 2020). Group g has probability p_g, inputs x ~ N(0, Σx_g) with
Σx_g = a_g I, tasks w ~ N(μ_g, Σw_g) with Σw_g = v_g I, labels y = wᵀx + ε, ε ~ N(0, s²). The model is
f(x) = θᵀx; each task takes k inner steps of size α on its K support points (X (K, d), Ŝ = XᵀX/K;
K = ∞: Ŝ = Σx). With e = θ − w, A = (I − αŜ)^k and B = Σ_{j<k} (I − αŜ)^j,

    θ_k − w = A e + α B (1/K) Xᵀε.

The outer directions D(θ) and their expectations (ε has mean 0 and is independent of X, w is independent
of X, the query set of neither, so the noise term and Σw drop out of every direction):

    MAML     ∇θ ½ E L_query(θ_k) = Σ_g p_g E[Aᵀ Σx_g A] (θ − μ_g)      (θ_k is linear in θ with ∂θ_k/∂θ = A)
    FO-MAML  E ∇L_query at θ_k   = Σ_g p_g Σx_g E[A] (θ − μ_g)          (no back-propagation through the steps)
    Reptile  E[θ − θ_k]          = Σ_g p_g (I − E[A]) (θ − μ_g)
    ERM      ∇θ ½ E L(θ)         = Σ_g p_g Σx_g (θ − μ_g)               (joint training: α = 0)

Each is H (θ − θ*) with H = Σ_g p_g H_g, so the fixed point is θ* = H⁻¹ Σ_g p_g H_g μ_g; it exists iff H
is non-singular, and it attracts the algorithm's small-step expected dynamics θ̇ = −H(θ − θ*) iff every
eigenvalue of H has positive real part. Σx_g = a_g I makes every H_g = λ_g I by rotation invariance
(E f(Ŝ) = (1/d) E tr f(Ŝ) · I), with β_g = α a_g and q_n(β) = E tr((I − βŴ)^n)/d, Ŵ = W/K, W ~ Wishart(K, I_d):

    q_n(β) = Σ_{m=0}^{n} C(n, m) (−β)^m c_m,   c_m = E tr(Ŵ^m)/d  (theory.wishart_moments);   (1 − β)^n at K = ∞,
    λ_g:  MAML a_g q_{2k}(β_g),   FO-MAML a_g q_k(β_g),   Reptile 1 − q_k(β_g),   ERM a_g,

so θ* = Σ_g p_g λ_g μ_g / Σ_g p_g λ_g and H = h I, h = Σ_g p_g λ_g (stable iff h > 0). MAML's λ_g ≥ 0: its fixed
point is a convex combination of the means (it tends to the hard groups' mean as the easy groups' λ_g → 0,
e.g. α a_g = 1 at K = ∞, but never lies beyond it here). FO-MAML's λ_g < 0 where α a_g > 1 and k is odd, so
its point can leave the hull of the means and can repel. Reptile with k = 1 is ERM scaled by α. The sums
are evaluated in exact rational arithmetic (c_m exact, α and a_g as the binary fractions of their floats).

The MAML post-adaptation loss at θ is Σ_g p_g L_g(θ) with L_g = theory.shallow_maml.post_adaptation_loss on
group g's family. For Σx = a I it is evaluated through the exact rescaling (derived here; X = √a G):
L(θ; a, μ, Σw, α, s²) = L(√a θ; 1, √a μ, a Σw, α a, s²), the Σx = I family at step α a, which shallow_maml
has in closed form for every k and K (tests: equal to the word-moment engine for k ≤ 3).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from math import comb

import numpy as np

from theory.ground.errors import ParameterError, require_int, require_real
from theory.shallow_maml import post_adaptation_loss
from theory.task_family import LinearTaskFamily
from theory.wishart_moments import inverse_support, isotropic_trace_moments_exact

ALGORITHMS = ("maml", "fomaml", "reptile", "erm")
PROB_TOL = 1e-9  # the group probabilities must sum to 1 within this
SINGULAR_TOL = 1e-12  # |h| below this times Σ_g p_g |λ_g|: H is singular, no (unique) fixed point


@dataclass(frozen=True)
class TaskGroup:
    """One group of tasks: probability p_g, Σx_g = a_g I, μ_g (m_g·1 for a scalar), Σw_g = v_g I."""

    prob: float  # p_g, the probability that a task comes from this group
    input_var: float  # a_g > 0: Σx_g = a_g I (small a_g: a hard group, its gradient steps move little)
    task_mean: float | tuple[float, ...]  # m_g (μ_g = m_g·1) or the vector μ_g itself
    task_var: float = 0.0  # v_g ≥ 0: Σw_g = v_g I (enters the losses, never the fixed points)

    def __post_init__(self):
        object.__setattr__(self, "prob", require_real("prob", self.prob, 0.0))
        if self.prob > 1:
            raise ParameterError("prob", self.prob, "a probability in [0, 1]")
        object.__setattr__(self, "input_var", require_real("input_var", self.input_var, 0.0, strict=True))
        object.__setattr__(self, "task_var", require_real("task_var", self.task_var, 0.0))
        mean = np.asarray(self.task_mean, float)
        if mean.ndim > 1 or not np.all(np.isfinite(mean)):
            raise ParameterError("task_mean", self.task_mean, "a finite number or a finite vector")
        object.__setattr__(self, "task_mean", float(mean) if mean.ndim == 0 else tuple(map(float, mean)))

    def mean_vector(self, dim: int) -> np.ndarray:
        """μ_g, (d,)."""
        if isinstance(self.task_mean, float):
            return np.full(dim, self.task_mean)
        if len(self.task_mean) != dim:
            raise ParameterError("task_mean", self.task_mean, f"a number or a vector of length d = {dim}")
        return np.array(self.task_mean)


@dataclass(frozen=True)
class FixedPoint:
    """One algorithm's fixed point θ* with the MAML post-adaptation loss there and its stability."""

    theta: np.ndarray | None  # θ* (d,); None where H is singular (no unique fixed point)
    post_adaptation_loss: float | None  # Σ_g p_g L_g(θ*) after k steps of α on K points (None with theta)
    stable: bool | None  # every eigenvalue of H has positive real part (None with theta)
    note: str  # how θ* sits: attracting, repelling, or why it does not exist
    rate: float  # h: the expected direction is h (θ − θ*) (H = h I), its sign decides stability


@dataclass(frozen=True)
class Mixture:
    """Tasks of different hardness and the inner loop that adapts to them: the one setting the fixed points, the
    mixture loss and their twins take (validated here, once).

    Groups g (TaskGroup: probability p_g, Σx = a_g I, mean μ_g, Σw = v_g I) in d dimensions; k inner steps of
    size α on K support points (K = ∞: the population gradient); label noise s²."""

    groups: tuple[TaskGroup, ...]
    dim: int = 1  # d
    alpha: float = 0.5  # α
    steps: int = 1  # k
    support: int | float = math.inf  # K
    noise_var: float = 0.0  # s²

    def __post_init__(self):
        object.__setattr__(self, "groups", check_groups(self.groups))
        require_int("dim", self.dim, 1)
        require_int("steps", self.steps, 0)
        require_real("alpha", self.alpha)
        require_real("noise_var", self.noise_var, 0.0)
        inverse_support(self.support)  # validates K


def group_family(group: TaskGroup, dim: int, support: int | float, query: int = 1,
                 noise_var: float = 0.0) -> LinearTaskFamily:
    """Group g's LinearTaskFamily: Σx = a_g I, μ_g, Σw = v_g I (shared by the closed forms and the sampler)."""
    dim = require_int("dim", dim, 1)
    return LinearTaskFamily(dim, support, query, noise_var, input_factor=math.sqrt(group.input_var) * np.eye(dim),
                            task_mean=group.mean_vector(dim), task_factor=math.sqrt(group.task_var) * np.eye(dim))


def adapted_trace(beta: float, power: int, dim: int, support: int | float) -> float:
    """q_n(β) = E tr((I − βŴ)^n)/d for Ŵ = W/K, W ~ Wishart(K, I_d): Σ_m C(n, m)(−β)^m c_m; (1 − β)^n at K = ∞."""
    power = require_int("power", power, 0)
    if inverse_support(support) == 0:
        return (1 - beta) ** power
    c = isotropic_trace_moments_exact(dim, support, power)
    b = Fraction(beta)
    return float(sum(comb(power, m) * (-b) ** m * c[m] for m in range(power + 1)))


def group_rates(mixture: Mixture) -> dict[str, np.ndarray]:
    """λ_g per algorithm (module doc): H_g = λ_g I, so the expected direction is Σ_g p_g λ_g (θ − μ_g)."""
    m = mixture
    out = {name: [] for name in ALGORITHMS}
    for g in m.groups:
        beta = float(Fraction(m.alpha) * Fraction(g.input_var))
        q_k, q_2k = adapted_trace(beta, m.steps, m.dim, m.support), adapted_trace(beta, 2 * m.steps, m.dim, m.support)
        out["maml"].append(g.input_var * q_2k)
        out["fomaml"].append(g.input_var * q_k)
        out["reptile"].append(1 - q_k)
        out["erm"].append(g.input_var)
    return {name: np.array(values) for name, values in out.items()}


def mixture_post_adaptation_loss(mixture: Mixture, theta) -> float:
    """Σ_g p_g L_g(θ): the expected query loss after k steps of α on K points, tasks from the mixture.

    L_g is shallow_maml.post_adaptation_loss of the Σx = I family at √a_g θ, μ → √a_g μ_g, Σw → a_g v_g I and
    step α a_g (the exact rescaling of the module doc), valid for every k and K.
    """
    m = mixture
    theta = np.asarray(theta, float).reshape(m.dim)
    total = 0.0
    for g in m.groups:
        root = math.sqrt(g.input_var)
        scaled = TaskGroup(g.prob, 1.0, tuple(root * group_family(g, m.dim, m.support).task_mean),
                           g.input_var * g.task_var)
        family = group_family(scaled, m.dim, m.support, noise_var=m.noise_var)
        total += g.prob * post_adaptation_loss(family, root * theta, m.alpha * g.input_var, m.steps)
    return float(total)


def fixed_points(mixture: Mixture) -> dict[str, FixedPoint]:
    """θ* for "maml", "fomaml", "reptile" and "erm": Σ_g p_g λ_g μ_g / Σ_g p_g λ_g (module doc), with the MAML
    post-adaptation loss there and whether the algorithm's expected dynamics are attracted to it."""
    probs = np.array([g.prob for g in mixture.groups])
    means = np.stack([g.mean_vector(mixture.dim) for g in mixture.groups])  # (G, d)
    out = {}
    for name, lam in group_rates(mixture).items():
        h = float(probs @ lam)
        if abs(h) <= SINGULAR_TOL * max(float(probs @ np.abs(lam)), 1e-300):
            out[name] = FixedPoint(None, None, None, "no fixed point: the coefficient Σ_g p_g λ_g is 0 (singular)", h)
            continue
        theta = (probs * lam) @ means / h  # (d,)
        loss = mixture_post_adaptation_loss(mixture, theta)
        note = "attracting" if h > 0 else "repelling: the expected dynamics move away from it"
        out[name] = FixedPoint(theta, loss, h > 0, note, h)
    return out


def check_groups(groups) -> tuple[TaskGroup, ...]:
    """At least one TaskGroup, probabilities summing to 1 (within PROB_TOL)."""
    groups = tuple(groups)
    if not groups or not all(isinstance(g, TaskGroup) for g in groups):
        raise ParameterError("groups", groups, "one or more TaskGroup")
    total = sum(g.prob for g in groups)
    if abs(total - 1) > PROB_TOL:
        raise ParameterError("groups", f"probabilities summing to {total:g}", "probabilities summing to 1")
    return groups
