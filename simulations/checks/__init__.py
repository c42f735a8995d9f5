"""Every theory result held against its simulation twin: the checks behind ``paper_repro.py verify``.

A check returns a ``Check``: the quantity, the setting, the closed-form value, the simulated
value and the rule it must meet: inside the Monte-Carlo interval (|theory − mean| ≤ 3.29·se),
equal to autograd/sympy to a float64 tolerance, or a meta-trained optimum near its prediction.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from itertools import pairwise

import numpy as np
import sympy as sp
import torch

from simulations import monte_carlo as mc
from simulations.kfo import kfo_transform
from simulations.layerwise_update import end_to_end_gradient_autograd, literal_layer_step
from simulations.maml import InnerLoop, adapt, meta_loss
from simulations.meta_gradient import shallow_meta_gradient
from simulations.models import deep_linear, shallow_linear
from simulations.statistics import Z_CHECK, Estimate
from simulations.tasks import sample_regression_tasks
from simulations.training import evaluate, meta_train
from simulations.transforms import matrix_preconditioner, scalar_step
from theory import deep_linear as dl
from theory import logistic as lg
from theory import preconditioned_maml as pre
from theory import shallow_maml as sh
from theory import wishart_moments as wm
from theory.task_family import LinearTaskFamily


@dataclass(frozen=True)
class Check:
    """One verified quantity: closed form against simulation."""

    name: str
    setting: str
    theory: float
    simulation: float
    tolerance: str  # the rule, with its numbers
    passed: bool
    kind: str  # "interval" (Monte-Carlo), "identity" (float64/sympy), "optimum" (meta-trained), "bound"
    score: float  # deviation in units of what the rule allows: passed ⇔ score ≤ 1

    def as_dict(self) -> dict:
        return asdict(self)


def _ci_check(name: str, setting: str, theory: float, est: Estimate) -> Check:
    margin = Z_CHECK * est.stderr
    return Check(name, setting, float(theory), est.mean, f"±{margin:.3g} (3.29 se, n={est.n})",
                 bool(est.contains(theory)), "interval", abs(theory - est.mean) / margin)


def _identity_check(name: str, setting: str, reference: float, value: float, residual: float,
                    tol: float = 1e-10) -> Check:
    return Check(name, setting, float(reference), float(value), f"max rel. residual {residual:.1e} ≤ {tol:g}",
                 bool(residual <= tol), "identity", residual / tol)


def _relative_residual(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(b))))


# -- Gaussian and Wishart moments ---------------------------------------------------------------
def check_fourth_moment_symbolic(scale: float) -> Check:
    derived, closed = wm.gaussian_fourth_moment_symbolic(3)
    residual = sp.simplify(derived - closed)
    nonzero = sum(1 for e in residual if e != 0)
    return Check("wishart.fourth_moment_isserlis", "d=3, symbolic Σ and A", 0.0, float(nonzero),
                 "entries of (Isserlis − closed form) that do not simplify to 0: must be 0", nonzero == 0,
                 "identity", float(nonzero))


def _random_spd(dim: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.standard_normal((dim, dim))
    return a @ a.T / dim + 0.5 * np.eye(dim)


def check_sandwich_moment(scale: float) -> Check:
    rng = np.random.default_rng(11)
    sigma, a, probe = _random_spd(4, rng), rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    theory = np.trace(probe @ wm.sample_moment_sandwich(sigma, a, 3))
    est = mc.estimate_sample_moment_sandwich(sigma, a, 3, probe, int(200_000 * scale), seed=1)
    return _ci_check("wishart.sandwich_E[SAS]", "d=4, K=3, random Σ, A, probe B: tr(B·E[ŜAŜ])", theory, est)


def check_trace_moment(scale: float) -> Check:
    theory = float(wm.isotropic_trace_moment(3).subs({wm.d_sym: 6, wm.K_sym: 4}))
    est = mc.estimate_isotropic_trace_moment(6, 4, 3, int(100_000 * scale), seed=2)
    return _ci_check("wishart.trace_moment_m3", "Σ=I, d=6, K=4: E tr(Ŝ³) by Wick pairings", theory, est)


# -- shallow model -------------------------------------------------------------------------------
def check_update_symbolic(scale: float) -> Check:
    derived, closed = sh.one_step_update_symbolic(3, 2)
    nonzero = sum(1 for e in sp.simplify(derived - closed) if e != 0)
    return Check("shallow.one_step_update", "d=3, K=2, symbolic X, y, w, α", 0.0, float(nonzero),
                 "entries of (sympy gradient step − closed form) not simplifying to 0: must be 0", nonzero == 0,
                 "identity", float(nonzero))


GENERAL = {"dim": 6, "support": 4, "query": 10, "noise_var": 0.25}


def _general_family() -> tuple[LinearTaskFamily, np.ndarray]:
    rng = np.random.default_rng(5)
    sigma_x, sigma_w = _random_spd(6, rng), _random_spd(6, rng)
    family = LinearTaskFamily.from_covariances(task_cov=sigma_w, input_cov=sigma_x,
                                               task_mean=rng.standard_normal(6), **GENERAL)
    return family, 0.5 * rng.standard_normal(6)


def check_pre_loss(scale: float) -> Check:
    family, theta = _general_family()
    est = mc.estimate_pre_adaptation_loss(family, theta, int(100_000 * scale), seed=3)
    return _ci_check("shallow.pre_adaptation_loss", "d=6, random Σx, Σw, μ≠0, θ≠μ, s²=0.25",
                     sh.pre_adaptation_loss(family, theta), est)


def check_post_loss_general(scale: float) -> Check:
    family, theta = _general_family()
    est = mc.estimate_post_adaptation_loss(family, theta, 0.2, 1, int(100_000 * scale), seed=4)
    return _ci_check("shallow.post_loss_one_step", "d=6, K=4, random Σx, Σw, μ≠0, θ≠μ, s²=0.25, α=0.2",
                     sh.post_adaptation_loss(family, theta, 0.2), est)


def check_post_loss_subspace(scale: float) -> Check:
    family = LinearTaskFamily.subspace(30, 5, 10, rank=3, seed=1)
    theta, alpha = sh.maml_optimal_init(family), sh.optimal_step_size(family)
    est = mc.estimate_post_adaptation_loss(family, theta, alpha, 1, int(50_000 * scale), seed=5)
    return _ci_check("shallow.best_post_loss", f"d=30, K=5, r=3, θ=μ, α*={alpha:.4f}",
                     sh.best_post_adaptation_loss(family), est)


def check_post_loss_k_steps(scale: float) -> Check:
    family = LinearTaskFamily.subspace(8, 4, 10, rank=3, noise_var=0.2, mean_norm=1.0, seed=2)
    theta = family.task_mean + 0.3
    est = mc.estimate_post_adaptation_loss(family, theta, 0.15, 3, int(100_000 * scale), seed=6)
    return _ci_check("shallow.post_loss_k_steps", "Σx=I, d=8, K=4, r=3, s²=0.2, θ≠μ, α=0.15, k=3",
                     sh.post_adaptation_loss(family, theta, 0.15, 3), est)


def _regression_sampler(family: LinearTaskFamily):
    return lambda n, gen: sample_regression_tasks(family, n, gen)


@lru_cache(maxsize=2)
def _meta_trained_shallow(scale: float):
    family = LinearTaskFamily.subspace(10, 5, 10, rank=10, mean_norm=2.0, seed=3)
    alpha = sh.optimal_step_size(family)
    model = shallow_linear(family.dim, seed=0)
    result = meta_train(model, _regression_sampler(family), InnerLoop(alpha), int(1500 * scale) + 100,
                        meta_batch=64, meta_lr=0.02, seed=7, lr_decay=True)
    return family, alpha, model, result


def check_init_converges_to_mu(scale: float) -> Check:
    family, _, model, result = _meta_trained_shallow(scale)
    theta = result.params[model.head_name].numpy().ravel()
    rel = np.linalg.norm(theta - family.task_mean) / np.linalg.norm(family.task_mean)
    return Check("shallow.meta_trained_init", "d=10, K=5, ‖μ‖=2, MAML+Adam: ‖θ−μ‖/‖μ‖",
                 0.0, float(rel), "relative distance ≤ 0.05", bool(rel <= 0.05), "optimum", rel / 0.05)


def check_meta_trained_loss(scale: float) -> Check:
    family, alpha, model, result = _meta_trained_shallow(scale)
    theta = result.params[model.head_name].numpy().ravel()
    est = evaluate(model, result.params, _regression_sampler(family), InnerLoop(alpha),
                   int(50_000 * scale), seed=8)["post_loss"]
    return _ci_check("shallow.meta_trained_post_loss", "the meta-trained θ above, fresh tasks",
                     sh.post_adaptation_loss(family, theta, alpha), est)


def check_optimal_alpha(scale: float) -> Check:
    family = LinearTaskFamily.subspace(20, 5, 10, rank=4, noise_var=0.5, seed=4)
    model = shallow_linear(family.dim)
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.as_tensor(family.task_mean)[None])
    base = 0.05
    result = meta_train(model, _regression_sampler(family), InnerLoop(base), int(1500 * scale) + 100,
                        meta_batch=128, meta_lr=0.02, seed=9, learn_init=False,
                        transform=scalar_step(), lr_decay=True)
    learned = base * float(torch.exp(result.transform_params["log_scale"]))
    theory = sh.optimal_step_size(family)
    rel = abs(learned - theory) / theory
    return Check("shallow.optimal_step_size", "d=20, K=5, r=4, s²=0.5, θ=μ, α meta-learned by MAML",
                 theory, learned, "relative error ≤ 0.1", bool(rel <= 0.1), "optimum", rel / 0.1)


def check_precond_loss(scale: float) -> Check:
    family, theta = _general_family()
    precond = 0.3 * np.eye(6) + 0.1 * np.random.default_rng(6).standard_normal((6, 6))
    est = mc.estimate_preconditioned_post_loss(family, theta, precond, 0.5, int(100_000 * scale), seed=10)
    return _ci_check("preconditioned.post_loss", "d=6, K=4, random Σx, Σw, μ, θ, non-symmetric P, α=0.5",
                     pre.preconditioned_post_adaptation_loss(family, theta, precond, 0.5), est)


SUBSPACE = {"dim": 20, "support": 5, "query": 10, "rank": 2}


def check_optimal_precond_loss(scale: float) -> Check:
    family = LinearTaskFamily.subspace(**SUBSPACE, seed=5)
    est = mc.estimate_preconditioned_post_loss(family, family.task_mean, pre.optimal_preconditioner(family),
                                               1.0, int(50_000 * scale), seed=11)
    return _ci_check("preconditioned.best_post_loss", "Σx=I, d=20, K=5, r=2, θ=μ, P=P*",
                     pre.preconditioned_best_post_loss(family), est)


def check_meta_learned_precond(scale: float) -> Check:
    family = LinearTaskFamily.subspace(**SUBSPACE, seed=5)
    model = shallow_linear(family.dim)
    result = meta_train(model, _regression_sampler(family), InnerLoop(0.1), int(1500 * scale) + 100,
                        meta_batch=128, meta_lr=0.01, seed=12,
                        transform=matrix_preconditioner(model.head_name, family.dim), lr_decay=True)
    est = mc.estimate_preconditioned_post_loss(
        family, result.params[model.head_name].numpy().ravel(), result.transform_params["precond"].numpy(),
        0.1, int(50_000 * scale), seed=13)
    return _ci_check("preconditioned.meta_learned", "d=20, K=5, r=2: MAML learns θ and a full P",
                     pre.preconditioned_best_post_loss(family), est)


def check_kfo_psd_step(scale: float) -> Check:
    d, k, alpha = 7, 4, 0.3
    rng = np.random.default_rng(27)
    x, y, theta = rng.standard_normal((k, d)), rng.standard_normal(k), rng.standard_normal((1, d))
    left, right = rng.standard_normal((1, 1)), rng.standard_normal((d, d))
    model = shallow_linear(d)
    name = model.head_name
    _, apply = kfo_transform(model, "psd", names=[name])
    factors = {f"{name}:L": torch.as_tensor(left), f"{name}:R": torch.as_tensor(right)}
    literal = adapt(model, {name: torch.as_tensor(theta)}, torch.as_tensor(x), torch.as_tensor(y),
                    InnerLoop(alpha), apply, factors)[name].numpy()  # (1, d), autograd
    grad = ((x @ theta.ravel() - y) @ x / k).reshape(1, d)  # G = ∇θ ½ mean (θᵀx − y)², (1, d)
    precond = np.kron(right.T @ right, left.T @ left)  # P = (RᵀR) ⊗ (LᵀL), (d, d)
    step = (precond @ grad.ravel(order="F")).reshape(1, d, order="F")  # unvec(P vec G), column-major
    closed = theta - alpha * step
    return _identity_check("kfo.psd_is_preconditioned_step", "shallow d=7, K=4, α=0.3, random L 1×1, R 7×7",
                           float(np.linalg.norm(literal)), float(np.linalg.norm(closed)),
                           _relative_residual(closed, literal))


def check_kfo_reaches_optimal_preconditioner(scale: float) -> Check:
    family = LinearTaskFamily.subspace(**SUBSPACE, seed=5)
    model = shallow_linear(family.dim)
    transform = kfo_transform(model, "psd")
    inner = InnerLoop(0.5)
    result = meta_train(model, _regression_sampler(family), inner, int(1500 * scale) + 100,
                        meta_batch=128, meta_lr=0.01, seed=12, transform=transform, lr_decay=True)
    est = evaluate(model, result.params, _regression_sampler(family), inner, int(200_000 * scale), seed=13,
                   transform=(result.transform_params, transform[1]))["post_loss"]
    return _ci_check("kfo.meta_learned_reaches_optimal_preconditioner",
                     "d=20, K=5, r=2, α=0.5: MAML learns θ and PSD KFO factors L (1×1), R (20×20)",
                     pre.preconditioned_best_post_loss(family), est)


def check_meta_gradient(scale: float) -> Check:
    family = LinearTaskFamily.subspace(7, 3, 4, rank=2, noise_var=0.1, seed=6)
    batch = sample_regression_tasks(family, 16, 14)
    gen = torch.Generator().manual_seed(15)
    theta = torch.randn(7, generator=gen, dtype=torch.float64)
    precond = torch.randn(7, 7, generator=gen, dtype=torch.float64)
    closed = shallow_meta_gradient(theta, batch, 0.3, precond)
    model = shallow_linear(7)
    params = {model.head_name: theta[None].clone().requires_grad_(True)}
    t_params, t_apply = matrix_preconditioner(model.head_name, 7)
    t_params = {"precond": precond.clone().requires_grad_(True)}
    meta_loss(model, params, batch, InnerLoop(0.3), t_apply, t_params).backward()
    auto = np.concatenate([params[model.head_name].grad.ravel(), t_params["precond"].grad.ravel()])
    mine = np.concatenate([closed.theta.ravel(), closed.precond.ravel()])
    return _identity_check("meta_gradient.closed_form", "d=7, K=3, 16 tasks: ∂/∂θ and ∂/∂P vs autograd",
                           float(np.linalg.norm(auto)), float(np.linalg.norm(mine)),
                           _relative_residual(mine, auto))


# -- deep linear and logistic models ------------------------------------------------------------
def _random_net(dims: list[int], seed: int, k: int = 6, labels: str = "real"):
    rng = np.random.default_rng(seed)
    layers = [rng.standard_normal((b, a)) / np.sqrt(a) for a, b in pairwise(dims)]
    x = rng.standard_normal((k, dims[0]))
    y = rng.standard_normal(k) if labels == "real" else np.sign(rng.standard_normal(k))
    return layers, x, y


def check_depth2_update(scale: float) -> Check:
    layers, x, y = _random_net([5, 4, 1], seed=20)
    g = dl.squared_loss_gradient(dl.end_to_end(layers), x, y)
    closed = dl.depth2_update(layers[0], layers[1], g, 0.7)
    literal = literal_layer_step(layers, x, y, 0.7).numpy()
    return _identity_check("deep.depth2_exact_update", "d=5, h=4, α=0.7: W2W1 − α(W2W2ᵀG + GW1ᵀW1) + α²GW1ᵀW2ᵀG",
                           float(np.linalg.norm(literal)), float(np.linalg.norm(closed)),
                           _relative_residual(closed, literal))


def _first_order_change(layers, x, y, loss: str, adapt: str = "all") -> np.ndarray:
    """dW'/dα at α = 0 of the literal layer-wise step, by autograd."""
    alpha = torch.zeros((), dtype=torch.float64, requires_grad=True)
    w_new = literal_layer_step(layers, x, y, alpha, loss=loss, adapt=adapt)  # (1, d)
    rows = [torch.autograd.grad(w_new.flatten()[i], alpha, retain_graph=True)[0] for i in range(w_new.numel())]
    return torch.stack(rows).reshape(w_new.shape).numpy()


def check_implicit_preconditioner(scale: float) -> Check:
    layers, x, y = _random_net([6, 5, 3, 4, 1], seed=21)
    g = dl.squared_loss_gradient(dl.end_to_end(layers), x, y)
    p = dl.implicit_preconditioner(layers)
    closed = dl.preconditioned_step(np.zeros_like(g), g, p, 1.0)  # −unvec(P vec G)
    literal = _first_order_change(layers, x, y, "squared")
    return _identity_check("deep.implicit_preconditioner", "depth 4, widths 6-5-3-4-1: dW'/dα|₀ = −P vec G",
                           float(np.linalg.norm(literal)), float(np.linalg.norm(closed)),
                           _relative_residual(closed, literal))


def _single_layer_check(adapt: str, label: str) -> Check:
    layers, x, y = _random_net([6, 4, 3, 1], seed=22)
    w = dl.end_to_end(layers)
    g = dl.squared_loss_gradient(w, x, y)
    closed = dl.preconditioned_step(w, g, dl.implicit_preconditioner(layers, adapt), 0.4)
    literal = literal_layer_step(layers, x, y, 0.4, adapt=adapt).numpy()
    return _identity_check(f"deep.{label}_exact_step", f"depth 3, α=0.4, only the {adapt} layer adapts",
                           float(np.linalg.norm(literal)), float(np.linalg.norm(closed)),
                           _relative_residual(closed, literal))


def check_anil_step(scale: float) -> Check:
    return _single_layer_check("top", "anil")


def check_bottom_step(scale: float) -> Check:
    return _single_layer_check("bottom", "bottom_layer")


def check_capacity(scale: float) -> Check:
    rng = np.random.default_rng(23)
    w = rng.standard_normal((3, 8))
    layers = dl.factorize(w, [3, 5, 4])
    return _identity_check("deep.same_function_class", "any 3×8 map factorised through widths 3-5-4",
                           float(np.linalg.norm(w)), float(np.linalg.norm(dl.end_to_end(layers))),
                           _relative_residual(dl.end_to_end(layers), w))


def check_logistic_gradient(scale: float) -> Check:
    layers, x, y = _random_net([7, 1], seed=24, labels="sign")
    w = layers[0]
    closed = lg.end_to_end_gradient(w, x, y)
    auto = end_to_end_gradient_autograd(w, x, y, loss="logistic").numpy()
    return _identity_check("logistic.gradient", "d=7, K=6: −(1/K) Σ y σ(−y wᵀx) x vs autograd",
                           float(np.linalg.norm(auto)), float(np.linalg.norm(closed)),
                           _relative_residual(closed, auto))


def check_logistic_preconditioner(scale: float) -> Check:
    layers, x, y = _random_net([6, 4, 3, 1], seed=25, labels="sign")
    closed = lg.deep_logistic_first_order_step(layers, x, y)
    literal = _first_order_change(layers, x, y, "logistic")
    return _identity_check("logistic.implicit_preconditioner", "deep linear classifier, depth 3: dW'/dα|₀",
                           float(np.linalg.norm(literal)), float(np.linalg.norm(closed)),
                           _relative_residual(closed, literal))


def check_deep_beats_shallow(scale: float) -> Check:
    family = LinearTaskFamily.subspace(**SUBSPACE, seed=5)
    alpha = sh.optimal_step_size(family)
    model = deep_linear(family.dim, 2, 16, seed=1)
    result = meta_train(model, _regression_sampler(family), InnerLoop(alpha), int(800 * scale) + 100,
                        meta_batch=64, meta_lr=0.01, seed=16, lr_decay=True)
    est = evaluate(model, result.params, _regression_sampler(family), InnerLoop(alpha),
                   int(20_000 * scale) + 500, seed=17)["post_loss"]
    best = sh.best_post_adaptation_loss(family)
    upper = est.mean + Z_CHECK * est.stderr
    return Check("deep.adapts_faster_than_shallow", "d=20, K=5, r=2, α=α*: MAML depth-2 width-16 vs best shallow",
                 best, est.mean, f"deep mean + 3.29 se = {upper:.4g} < shallow best", bool(upper < best),
                 "bound", upper / best)


CHECKS: list[Callable[[float], Check]] = [
    check_fourth_moment_symbolic, check_sandwich_moment, check_trace_moment, check_update_symbolic,
    check_pre_loss, check_post_loss_general, check_post_loss_subspace, check_post_loss_k_steps,
    check_init_converges_to_mu, check_meta_trained_loss, check_optimal_alpha,
    check_precond_loss, check_optimal_precond_loss, check_meta_learned_precond, check_meta_gradient,
    check_kfo_psd_step, check_kfo_reaches_optimal_preconditioner,
    check_depth2_update, check_implicit_preconditioner, check_anil_step, check_bottom_step, check_capacity,
    check_logistic_gradient, check_logistic_preconditioner, check_deep_beats_shallow,
]


def run_checks(scale: float = 1.0, progress: bool = False) -> list[Check]:
    """Run every check; ``scale`` multiplies sample sizes and iterations (tests use < 1)."""
    from tqdm.auto import tqdm

    return [check(scale) for check in tqdm(CHECKS, desc="verify", disable=None if progress else True, leave=False)]


MIN_SCALE = 0.3  # below this, heavy-tailed Monte-Carlo estimates lose their interval's coverage


def format_checks(checks: list[Check]) -> str:
    """The verify table: quantity, theory, simulation, pass, setting and rule; then the pass count."""
    width = max(len(c.name) for c in checks)
    lines = [f"{'quantity':{width}}  {'theory':>12}  {'simulation':>12}  pass  setting; rule"]
    lines += [f"{c.name:{width}}  {c.theory:12.6g}  {c.simulation:12.6g}  {'yes' if c.passed else 'NO ':4}"
              f"  {c.setting}; {c.tolerance}" for c in checks]
    failed = sum(not c.passed for c in checks)
    lines.append(f"{len(checks) - failed} passed, {failed} failed")
    return "\n".join(lines)
