"""How meta-training gets there: gradient-flow dynamics of shallow MAML, ANIL and depth-2 MAML.

Time is gradient-flow time t = η·n for meta learning rate η after n meta-iterations (the expected
meta-gradient, full batch): dθ/dt = −∇L(θ). Losses are the toolkit's (½E(ŷ − y)², noise included).

Shallow MAML (derived here). The k-step post-adaptation loss is quadratic in θ (shallow_maml: linear in
C = (θ − μ)(θ − μ)ᵀ + Σw), so L(θ) = L* + ½(θ − μ)ᵀH(θ − μ) with
    H = E[((I − αŜ)^k)ᵀ Σx (I − αŜ)^k]
(k = 1: preconditioned_maml's M_P at P = I; Σx = I, finite K: H = m_k I, m_k = E tr((I − αŜ)^{2k})/d from
Wishart moments; K = ∞: H = Σx(I − αΣx)^{2k}; other exact k-step cases: H by polarisation of the exact
quadratic). With H = V diag(h_j) Vᵀ and c = Vᵀ(θ₀ − μ):
    flow:       L(t) = L* + ½ Σ_j h_j e^{−2h_j t} c_j²
    recursion:  L_n  = L* + ½ Σ_j h_j (1 − ηh_j)^{2n} c_j²   (full-batch gradient descent with step η),
stable iff η < 2/h_max. Joint training (ERM: the pre-adaptation loss, α = 0) has H = Σx and the same
minimiser μ. For Σx = I and k = 1, H = hI with h = (1 − α)² + α²(d + 1)/K: MAML's excess loss decays as
e^{−2ht} where ERM's decays as e^{−2t} — slower by the factor h exactly (h = (d + 1)/(K + d + 1) at α*).

ANIL on f(x) = vᵀWx, width h (derived here; theory.anil_width). With μ = 0 the head's start v₀ = 0 is
optimal and stays 0 (∇_{v₀}L = W M_P θ = 0 at θ = Wᵀv₀ = 0), and the loss depends on W through
Q = αWᵀW only: L(Q) = ½[tr(SC) − 2tr(SQSC) + tr(QSQD)] + ½s², S = Σx, C = Σw, D = c₁SCS + c₂S,
c₁ = (K + 1)/K, c₂ = (tr(SC) + s²)/K. dW/dt = −∇_W L = −2αW·G with G = ∂L/∂Q = ½(SQD + DQS) − SCS, so
    dQ/dt = −2α(GQ + QG).
Where S and C share eigenvectors u_i (σ_i, c_i) and the start is aligned, W(0) = C₀·[u_1 … u_h]ᵀ, G stays
diagonal and every mode is a logistic curve: dq_i/dt = 4α q_i (a_i − b_i q_i), a_i = σ_i²c_i,
b_i = σ_i(c₁σ_i²c_i + c₂σ_i), so
    q_i(t) = q_i*/(1 + (q_i*/q_i(0) − 1) e^{−4αa_i t}),   q_i* = a_i/b_i,
    a_i = 0:  q_i(t) = q_i(0)/(1 + 4α b_i q_i(0) t)   (an unused direction is unlearned only algebraically),
    L(t) = ½ Σ_i [σ_i c_i − 2a_i q_i + b_i q_i²] + ½s².
Mode i switches on (reaches half its limit) at t_i = ln(q_i*/q_i(0) − 1)/(4αa_i) ≈ ln(q_i*/q_i(0))/(4αa_i).
With S = σI and C = vI every start is aligned with its own eigenvectors (dQ/dt is a polynomial in Q), so
the same closed form holds from any start. Width h < rank Σw with aligned rows ends at the rank-h optimum
of anil_width (the top-h modes learned, the rest never started). Any other start or covariances: the
matrix ODE integrated numerically (in W: scipy DOP853, rtol 1e-11), labelled as such.

Depth-2 full MAML: gradient flow on the exact depth-2 loss (theory.depth2_maml, gradients by torch
autograd through the same formula), integrated numerically (fixed-step RK4 in t, many starts at once),
labelled; where it stops is compared with the optimum search of depth2_maml.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theory.ground.errors import NoClosedForm, ParameterError, require_int, require_real
from theory.preconditioned_maml import preconditioned_post_adaptation_loss, step_matrix_moment
from theory.shallow_maml import post_adaptation_loss, pre_adaptation_loss
from theory.task_family import LinearTaskFamily
from theory.wishart_moments import inverse_support

CLOSED_FORM = "closed form"
INTEGRATED = "numerical integration"
_COMMUTE_TOL = 1e-10  # relative off-diagonal mass below which Σx and Σw count as sharing eigenvectors


@dataclass(frozen=True)
class Curve:
    """A meta-training curve: the loss at each time, where it tends, and how it was obtained."""

    times: np.ndarray  # gradient-flow times t = η·n
    loss: np.ndarray  # L(t), one per time
    limit: float  # lim_{t→∞} L(t)
    method: str  # CLOSED_FORM or INTEGRATED (…)
    note: str = ""
    switch_on_times: tuple[float, ...] = ()  # ANIL: each learned mode's half-way time, fastest first


def _check_times(times) -> np.ndarray:
    t = np.asarray(times, float).reshape(-1)
    if t.size == 0 or not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ParameterError("times", tuple(t.tolist()), "finite times ≥ 0")
    return t


# -- shallow MAML ------------------------------------------------------------------------------------

def shallow_hessian(family: LinearTaskFamily, alpha: float, steps: int = 1) -> np.ndarray:
    """H (d, d) with L_k(θ) = L_k(μ) + ½(θ − μ)ᵀH(θ − μ): the meta-objective's curvature (module doc).

    α = 0 (or steps = 0) is joint training's: H = Σx. NoClosedForm where the k-step loss has none.
    """
    alpha = require_real("alpha", alpha)
    steps = require_int("steps", steps, 0)
    s = family.input_cov
    if steps == 0 or alpha == 0:
        return s.copy()
    if family.infinite_support:
        vals, vecs = np.linalg.eigh(s)
        return (vecs * (vals * (1 - alpha * vals) ** (2 * steps))) @ vecs.T
    if steps == 1:
        return step_matrix_moment(family, np.eye(family.dim), alpha)
    mu = family.task_mean
    if family.isotropic_inputs:  # H = m_k I: the k-step loss's coefficient of ‖θ − μ‖²
        unit = np.zeros(family.dim)
        unit[0] = 1.0
        m_k = 2 * (post_adaptation_loss(family, mu + unit, alpha, steps) - post_adaptation_loss(family, mu, alpha,
                                                                                                 steps))
        return m_k * np.eye(family.dim)
    return _polarised_hessian(lambda theta: post_adaptation_loss(family, theta, alpha, steps), mu)


def _polarised_hessian(loss, mu: np.ndarray) -> np.ndarray:
    """The matrix of an exact quadratic L(μ + δ) − L(μ) = ½δᵀHδ by polarisation (d(d + 1)/2 + 1 evaluations)."""
    d, base = len(mu), loss(mu)
    eye = np.eye(d)
    diag = np.array([2 * (loss(mu + eye[i]) - base) for i in range(d)])
    h = np.diag(diag)
    for i in range(d):
        for j in range(i + 1, d):
            h[i, j] = h[j, i] = (loss(mu + eye[i] + eye[j]) - base) - 0.5 * (diag[i] + diag[j])
    return h


def _quadratic_curve(hess: np.ndarray, delta0: np.ndarray, floor: float, decays) -> np.ndarray:
    vals, vecs = np.linalg.eigh(hess)
    c2 = (vecs.T @ delta0) ** 2
    return floor + 0.5 * np.array([np.sum(vals * decay(vals) * c2) for decay in decays])


def shallow_flow(family: LinearTaskFamily, theta0, alpha: float, times, steps: int = 1) -> Curve:
    """L(t) under gradient flow on the k-step MAML objective from θ₀ (α = 0: joint training's pre-adaptation
    loss): L* + ½Σ_j h_j e^{−2h_j t} c_j² (module doc)."""
    t = _check_times(times)
    hess, floor, delta0 = _shallow_parts(family, theta0, alpha, steps)
    loss = _quadratic_curve(hess, delta0, floor, [lambda h, ti=ti: np.exp(-2 * h * ti) for ti in t])
    return Curve(t, loss, floor, CLOSED_FORM, "L* + ½ Σ h_j e^{−2 h_j t} c_j², H the meta-objective's curvature")


def shallow_recursion(family: LinearTaskFamily, theta0, alpha: float, meta_lr: float, iterations,
                      steps: int = 1) -> np.ndarray:
    """L_n after n full-batch gradient steps of size η = meta_lr: L* + ½Σ_j h_j (1 − ηh_j)^{2n} c_j²."""
    meta_lr = require_real("meta_lr", meta_lr, 0.0, strict=True)
    n = np.asarray(iterations, int).reshape(-1)
    hess, floor, delta0 = _shallow_parts(family, theta0, alpha, steps)
    return _quadratic_curve(hess, delta0, floor, [lambda h, ni=ni: (1 - meta_lr * h) ** (2 * ni) for ni in n])


def _shallow_parts(family: LinearTaskFamily, theta0, alpha: float, steps: int):
    theta0 = np.asarray(theta0, float)
    if theta0.shape != (family.dim,) or not np.all(np.isfinite(theta0)):
        raise ParameterError("theta0", theta0.shape, f"a finite vector of length d = {family.dim}")
    hess = shallow_hessian(family, alpha, steps)
    mu = family.task_mean
    floor = (pre_adaptation_loss(family, mu) if steps == 0 or alpha == 0
             else post_adaptation_loss(family, mu, alpha, steps))
    return hess, float(floor), theta0 - mu


def stability_limit(hess: np.ndarray) -> float:
    """The largest step η for which full-batch gradient descent converges: 2/λ_max(H)."""
    top = float(np.linalg.eigvalsh(hess)[-1])
    return math.inf if top <= 0 else 2.0 / top


def isotropic_slowdown(dim: int, support: int | float, alpha: float) -> float:
    """h = (1 − α)² + α²(d + 1)/K: MAML's curvature for Σx = I, k = 1, over joint training's (1)."""
    return (1 - alpha) ** 2 + alpha**2 * (dim + 1) * inverse_support(support)


# -- ANIL --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AnilModes:
    """The aligned modes: dq_i/dt = 4α q_i(a_i − b_i q_i), loss ½Σ[σ_i c_i − 2a_i q_i + b_i q_i²] + ½s²."""

    a: np.ndarray  # σ_i² c_i (growth)
    b: np.ndarray  # σ_i(c₁σ_i²c_i + c₂σ_i) (saturation)
    base: np.ndarray  # σ_i c_i (the mode's loss before adaptation)
    q0: np.ndarray  # q_i(0)
    basis: np.ndarray  # (d, d) columns u_i, ordered by σ_i c_i, largest first
    alpha: float
    noise_var: float

    def q(self, t: np.ndarray) -> np.ndarray:
        """q_i(t), (len(t), d): logistic where a_i > 0, algebraic decay where a_i = 0."""
        t = np.asarray(t, float)[:, None]
        a, b, q0 = self.a, self.b, self.q0
        grow = a > 0
        star = np.where(grow, a / np.where(b > 0, b, 1.0), 0.0)
        ratio = np.where(grow & (q0 > 0), star / np.where(q0 > 0, q0, 1.0) - 1.0, 0.0)
        logistic = star / (1.0 + ratio * np.exp(-4 * self.alpha * a * t))
        decay = q0 / (1.0 + 4 * self.alpha * b * q0 * t)
        return np.where(grow & (q0 > 0), logistic, np.where(grow, 0.0, decay))

    def loss(self, q: np.ndarray) -> np.ndarray:
        return 0.5 * ((self.base - 2 * self.a * q + self.b * q**2).sum(-1) + self.noise_var)

    @property
    def limit(self) -> float:
        """L(∞): q_i → q_i* for every started growing mode, → 0 for a decaying one (b_i > 0), else stays."""
        grow, q0 = self.a > 0, self.q0
        star = np.where(grow, self.a / np.where(self.b > 0, self.b, 1.0), 0.0)
        final = np.where(grow, np.where(q0 > 0, star, 0.0), np.where(self.b > 0, 0.0, q0))
        return float(self.loss(final))

    def switch_on_times(self) -> tuple[float, ...]:
        """t_i = ln(q_i*/q_i(0) − 1)/(4αa_i) for each started mode with q_i(0) < q_i*/2 (fastest first)."""
        out = []
        for a, b, q0 in zip(self.a, self.b, self.q0):
            if a > 0 and q0 > 0:
                ratio = (a / b) / q0 - 1.0
                out.append(math.log(ratio) / (4 * self.alpha * a) if ratio > 1 else 0.0)
        return tuple(out)


def anil_start(family: LinearTaskFamily, width: int, init_scale: float) -> np.ndarray:
    """W(0) = C₀·[u_1 … u_h]ᵀ (h, d): rows along the eigenvectors of the task structure, strongest first
    (Σx and Σw's shared eigenvectors where they commute, else those of Σx^½ΣwΣx^½)."""
    width = require_int("width", width, 1, family.dim)
    init_scale = require_real("init_scale", init_scale, 0.0, strict=True)
    return init_scale * _mode_basis(family)[0][:, :width].T


def anil_flow(family: LinearTaskFamily, alpha: float, times, w0=None, width: int | None = None,
              init_scale: float = 0.1) -> Curve:
    """L(t) of ANIL under gradient flow from W(0) (v₀ = 0, μ = 0): the logistic closed form where it holds
    (module doc), else the matrix ODE integrated numerically. W(0) is ``w0``, or anil_start(width, init_scale)."""
    t = _check_times(times)
    alpha = require_real("alpha", alpha, 0.0, strict=True)
    if np.any(family.task_mean != 0):
        raise ParameterError("mean_norm", float(np.linalg.norm(family.task_mean)),
                             "0 for ANIL's dynamics (v₀ = 0 is optimal and stays 0 only when μ = 0)")
    if w0 is None:
        w0 = anil_start(family, family.dim if width is None else width, init_scale)
    w0 = np.asarray(w0, float)
    if w0.ndim != 2 or w0.shape[1] != family.dim or not np.all(np.isfinite(w0)):
        raise ParameterError("w0", w0.shape, f"a finite (h, {family.dim}) matrix")
    modes = anil_modes(family, alpha, w0)
    if modes is not None:
        return Curve(t, modes.loss(modes.q(t)), modes.limit, CLOSED_FORM,
                     "every mode a logistic curve (aligned start, shared eigenvectors)", modes.switch_on_times())
    q = integrate_anil(family, alpha, w0, t)
    loss = np.array([anil_loss_of_q(family, qi) for qi in q])
    return Curve(t, loss, math.nan, INTEGRATED + " (scipy DOP853, rtol 1e-11, atol 1e-14)",
                 "start not aligned with shared eigenvectors of Σx and Σw: no closed form; the limit is not "
                 "computed")


def anil_recursion(family: LinearTaskFamily, alpha: float, w0, meta_lr: float, iterations) -> np.ndarray:
    """The loss after n full-batch gradient steps W ← W − η∇_W L (v₀ = 0, μ = 0) for each n in ``iterations``:
    the exact discrete path that SGD with step η follows on average (theory.anil_width's analytic gradient)."""
    from theory.anil_width import anil_loss_gradient

    meta_lr = require_real("meta_lr", meta_lr, 0.0, strict=True)
    n = np.asarray(iterations, int).reshape(-1)
    w, v0 = np.array(w0, float), np.zeros(np.shape(w0)[0])
    out, done = {}, 0
    for target in sorted(set(n.tolist())):
        for _ in range(target - done):
            value, grad_w, _ = anil_loss_gradient(family, w, v0, alpha)
            if not np.isfinite(value):
                raise ParameterError("meta_lr", meta_lr, f"a step below the stability limit (the loss diverged "
                                                         f"after {done} steps)")
            w = w - meta_lr * grad_w
            done += 1
        out[target] = anil_width_loss(family, w, alpha)
    return np.array([out[i] for i in n.tolist()])


def anil_width_loss(family: LinearTaskFamily, w: np.ndarray, alpha: float) -> float:
    """The one-step ANIL loss at (W, v₀ = 0)."""
    from theory.anil_width import anil_post_adaptation_loss

    return anil_post_adaptation_loss(family, w, np.zeros(w.shape[0]), alpha)


def anil_modes(family: LinearTaskFamily, alpha: float, w0: np.ndarray) -> AnilModes | None:
    """The logistic modes of ANIL's flow from W(0) = w0, or None where the closed form does not hold."""
    s, c = family.input_cov, family.task_cov
    q0 = alpha * w0.T @ w0
    scalar = _is_scalar(s) and _is_scalar(c)
    basis, shared = _mode_basis(family)
    if scalar:  # any start: Q(0)'s own eigenvectors
        basis = np.linalg.eigh(q0)[1]
        basis = basis[:, ::-1]
    elif not shared:
        return None
    q0_modes = basis.T @ q0 @ basis
    if not _diagonal(q0_modes):
        return None
    sigma, cvals = np.diag(basis.T @ s @ basis), np.diag(basis.T @ c @ basis).copy()
    inv_k = inverse_support(family.support)
    c1, c2 = 1 + inv_k, (np.trace(s @ c) + family.noise_var) * inv_k
    cvals[cvals <= _COMMUTE_TOL * max(cvals.max(initial=0.0), 1e-300)] = 0.0  # Σw's null directions: exactly 0
    a = sigma**2 * cvals
    b = sigma * (c1 * sigma**2 * cvals + c2 * sigma)
    q0_diag = np.clip(np.diag(q0_modes), 0, None)
    q0_diag[q0_diag <= _COMMUTE_TOL * max(q0_diag.max(initial=0.0), 1e-300)] = 0.0  # rank(Q) ≤ h: rounding is 0
    return AnilModes(a, b, sigma * cvals, q0_diag, basis, alpha, family.noise_var)


def integrate_anil(family: LinearTaskFamily, alpha: float, w0, times) -> list[np.ndarray]:
    """Q(t) = αWᵀW at each time, integrating dW/dt = −2αW·G(Q) numerically (scipy DOP853) from W(0) = w0.

    The flow is integrated in W, not in Q: Q's zero eigenvalues are unstable fixed points of dQ/dt (rounding
    below zero would grow), while W keeps Q positive semi-definite and of rank ≤ h.
    """
    from scipy.integrate import solve_ivp

    t = _check_times(times)
    w0 = np.asarray(w0, float)
    h, d = w0.shape
    s, c = family.input_cov, family.task_cov
    inv_k = inverse_support(family.support)
    dd = (1 + inv_k) * s @ c @ s + (np.trace(s @ c) + family.noise_var) * inv_k * s
    scs = s @ c @ s

    def rhs(_, flat):
        w = flat.reshape(h, d)
        q = alpha * w.T @ w
        g = 0.5 * (s @ q @ dd + dd @ q @ s) - scs
        return (-2 * alpha * w @ g).ravel()

    order = np.argsort(t)
    sol = solve_ivp(rhs, (0.0, float(t.max())), w0.ravel(), method="DOP853", t_eval=t[order], rtol=1e-11,
                    atol=1e-14)
    if not sol.success:
        raise NoClosedForm(f"the ANIL flow's numerical integration failed: {sol.message}")
    out = [None] * len(t)
    for i, col in zip(order, sol.y.T):
        w = col.reshape(h, d)
        out[i] = alpha * w.T @ w
    return out


def anil_loss_of_q(family: LinearTaskFamily, q: np.ndarray) -> float:
    """The one-step ANIL loss at θ = μ with αP = Q (theory.preconditioned_maml at α = 1)."""
    return preconditioned_post_adaptation_loss(family, family.task_mean, 0.5 * (q + q.T), 1.0)


def _mode_basis(family: LinearTaskFamily) -> tuple[np.ndarray, bool]:
    """(basis (d, d), whether it diagonalises both Σx and Σw): columns ordered by σ_i c_i, largest first."""
    s, c = family.input_cov, family.task_cov
    scale = max(np.abs(s).max(), 1e-300) / max(np.abs(c).max(), 1e-300)
    _, basis = np.linalg.eigh(c * scale + (math.pi / 7) * s)  # a generic combination: shared eigenvectors
    shared = _diagonal(basis.T @ s @ basis) and _diagonal(basis.T @ c @ basis)
    if not shared:
        vals, vecs = np.linalg.eigh(s)
        half = (vecs * np.sqrt(vals)) @ vecs.T
        _, basis = np.linalg.eigh(half @ c @ half)
    strength = np.diag(basis.T @ s @ basis) * np.diag(basis.T @ c @ basis)
    return basis[:, np.argsort(-strength, kind="stable")], shared


def _diagonal(m: np.ndarray) -> bool:
    off = m - np.diag(np.diag(m))
    return bool(np.abs(off).max(initial=0.0) <= _COMMUTE_TOL * max(np.abs(m).max(initial=0.0), 1e-300))


def _is_scalar(m: np.ndarray) -> bool:
    return _diagonal(m) and bool(np.ptp(np.diag(m)) <= _COMMUTE_TOL * max(np.abs(m).max(), 1e-300))


# -- depth-2 full MAML -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Depth2Flow:
    """Where gradient flow on the exact depth-2 loss took each start by time ``horizon`` (numerical)."""

    loss: np.ndarray  # (starts,) L at the horizon
    grad_norm: np.ndarray  # (starts,) ‖∇L‖ there: small where the flow has stopped
    w1: np.ndarray  # (starts, h, d)
    w2: np.ndarray  # (starts, 1, h)
    curve: np.ndarray  # (len(times), starts) L along the way, at ``times``
    times: np.ndarray
    horizon: float
    method: str


def depth2_flow(family: LinearTaskFamily, w1, w2, alpha: float, horizon: float, times=()) -> Depth2Flow:
    """Gradient flow dW/dt = −∇L on the exact depth-2 loss (theory.depth2_maml) from each start at once.

    ``w1`` (starts, h, d) and ``w2`` (starts, 1, h). Integrated by scipy's RK45 (rtol 1e-6, atol 1e-9) on all
    starts together, gradients by torch autograd through the exact formula: numerical, labelled so.
    """
    import torch
    from scipy.integrate import solve_ivp

    from theory.depth2_maml import depth2_loss_of_nets

    alpha = require_real("alpha", alpha, 0.0, strict=True)
    horizon = require_real("horizon", horizon, 0.0, strict=True)
    w1, w2 = np.asarray(w1, float), np.asarray(w2, float)
    if w1.ndim != 3 or w1.shape[2] != family.dim or w2.shape != (w1.shape[0], 1, w1.shape[1]):
        raise ParameterError("w1", (w1.shape, w2.shape), f"(starts, h, {family.dim}) and (starts, 1, h) weights")
    starts, h, d = w1.shape
    losses = depth2_loss_of_nets(family, alpha)

    def evaluate(y):
        """(∇L (starts, h(d + 1)), L (starts,)) for all starts at once: the nets along a leading axis."""
        flat = torch.tensor(y.reshape(starts, -1), requires_grad=True)
        loss = losses(flat[:, : h * d].reshape(starts, h, d), flat[:, h * d:].reshape(starts, 1, h))  # (starts,)
        (grad,) = torch.autograd.grad(loss.sum(), flat)  # each start's loss depends on its own row only
        return grad.numpy(), loss.detach().numpy()

    y0 = np.concatenate([w1.reshape(starts, -1), w2.reshape(starts, -1)], axis=1).ravel()
    t_eval = np.unique(np.concatenate([_check_times(times) if len(times) else np.zeros(0), [horizon]]))
    t_eval = t_eval[t_eval <= horizon]
    sol = solve_ivp(lambda _, y: -evaluate(y)[0].ravel(), (0.0, horizon), y0, method="RK45", t_eval=t_eval,
                    rtol=1e-6, atol=1e-9)
    if not sol.success:
        raise NoClosedForm(f"the depth-2 flow's numerical integration failed: {sol.message}")
    curve = np.array([evaluate(col)[1] for col in sol.y.T])  # (len(t_eval), starts)
    grad, value = evaluate(sol.y[:, -1])
    end = sol.y[:, -1].reshape(starts, -1)
    return Depth2Flow(value, np.linalg.norm(grad, axis=1), end[:, : h * d].reshape(starts, h, d),
                      end[:, h * d:].reshape(starts, 1, h), curve, sol.t, horizon,
                      f"{INTEGRATED} (scipy RK45, rtol 1e-6, atol 1e-9; {sol.nfev} gradient evaluations)")
