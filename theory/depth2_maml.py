"""The exact expected loss of full MAML on a depth-2 linear net (scalar output), and its minimum over the weights.

Derived here. Network f(x) = w2 W1 x, W1 (h, d), w2 (1, h); every layer takes one step of size α.
With a = w_e = W1ᵀw2ᵀ, e = a − w_τ ~ N(m, Σw), m = a − μ, and the support gradient
g = Ŝe − Xᵀε/K, the exact update (depth2_update with G = gᵀ) is
    r = w_e' − w_τ = e − αPg + α²(aᵀg)g,   P = W1ᵀW1 + ‖w2‖² I,
so L(α) = ½E[rᵀΣx r] + ½s² = ½E[F0 + αF1 + α²F2 + α³F3 + α⁴F4] + ½s² with
    F0 = eᵀΣx e, F1 = −2eᵀΣxPg, F2 = 2(aᵀg)(eᵀΣx g) + gᵀPΣxPg, F3 = −2(aᵀg)(gᵀPΣx g), F4 = (aᵀg)² gᵀΣx g.
Step 1, given e: g = (1/K) Σ_i z_i with z_i = x_i ρ_i, ρ_i = x_iᵀe − ε_i, iid; (x, ρ) is a centred
Gaussian pair with Cov(x) = Σx, Cov(x, ρ) = b = Σx e, Var ρ = q = eᵀΣx e + s². Isserlis on the n
x-slots and n ρ-slots of E[ρⁿ Π_j c_jᵀx] gives Σ_M n!/(n−t)! (n−t−1)!! q^|M| Π_{(i,j)∈M} c_iᵀΣx c_j
Π_{k∉M} c_kᵀb over partial matchings M of the x-slots (t = n − 2|M| x-slots pair with ρ-slots), and
E[Π_{j≤n} c_jᵀg | e] = Σ_π K(K−1)⋯(K−|π|+1)/Kⁿ Π_{B∈π} E[Π_{j∈B} c_jᵀz] over set partitions π of the
n factors (the samples equal within a block, distinct across blocks). Quadratic forms are
gᵀBg = Σ_k (B_{k·}g)(g_k). So E[F_j | e] is a polynomial of degree ≤ 4 in e.
Step 2: E over e = m + Fz, z ~ N(0, I_r), by Stroud's degree-5 Gaussian cubature (2r² + 1 points):
exact for polynomials of degree ≤ 5. Nothing is approximated; K = ∞ keeps the all-distinct π only.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from theory.deep_linear import check_layers
from theory.ground.errors import ParameterError, require_int, require_real
from theory.task_family import LinearTaskFamily


def depth2_loss_polynomial(family: LinearTaskFamily, w1, w2) -> np.ndarray:
    """Coefficients c_0..c_4 (lowest first) of the exact depth-2 MAML loss L(α) = Σ_j c_j α^j (section doc)."""
    inputs = _depth2_inputs(family, w1, w2)
    return np.array(_loss_coefficients(*inputs, family.noise_var, family.support))


def depth2_post_adaptation_loss(family: LinearTaskFamily, w1, w2, alpha: float) -> float:
    """Expected query loss per example after one step of size α on both layers of f(x) = w2 W1 x, exact.

    L = ½E[(w_e' − w_τ)ᵀΣx(w_e' − w_τ)] + ½s², w_e' = w_e − α(W1ᵀW1 + ‖w2‖²I)g + α²(w_eᵀg)g, over
    w_τ ~ N(μ, Σw), the support set and its noise; any Σx, μ, Σw, s² ≥ 0, K finite or ∞ (section doc).
    """
    alpha = require_real("alpha", alpha)
    return float(np.polynomial.polynomial.polyval(alpha, depth2_loss_polynomial(family, w1, w2)))


GRADIENTS = ("torch", "autograd")  # depth2_best_post_loss's reverse mode: torch's is about 3.4× faster an evaluation
# (d = 20: 4.2 ms against 14 ms), autograd's (HIPS, numpy only) spares the ~1 s of importing torch where nothing
# else needs it (explore --theory-only); both differentiate the same formula and agree to rounding (tests)


def depth2_best_post_loss(family: LinearTaskFamily, width: int, alpha: float, restarts: int = 6, seed: int = 0,
                          starts=(), gradient: str = "torch") -> tuple[float, np.ndarray, np.ndarray, str]:
    """min over (W1, w2) of the exact depth-2 loss at hidden width h: (value, W1, w2, method), numerical.

    L-BFGS on all h(d + 1) weights from ``restarts`` seeded random starts (scales 0.3 to 1.5 of
    N(0, 1/d), N(0, 1/h)) and from the given ``starts`` ((W1, w2) pairs, e.g. ANIL's optimum with
    w2 = v₀), gradients by reverse mode through the same formula (``gradient``: torch autograd, or HIPS autograd
    on numpy, which imports no torch; GRADIENTS); the best run is kept.
    A local search: the value is an upper bound on the true minimum, reached in practice when restarts agree.
    """
    from scipy.optimize import minimize

    width = require_int("width", width, 1)
    alpha, restarts = require_real("alpha", alpha), require_int("restarts", restarts, 0 if starts else 1)
    if gradient not in GRADIENTS:
        raise ParameterError("gradient", gradient, f"one of {', '.join(GRADIENTS)}")
    d = family.dim
    objective = _torch_objective(family, width, alpha) if gradient == "torch" else \
        _autograd_objective(family, width, alpha)

    rng = np.random.default_rng(seed)
    initial = [np.concatenate([np.asarray(w1, float).reshape(width * d), np.asarray(w2, float).reshape(width)])
               for w1, w2 in starts]
    for scale in np.linspace(0.3, 1.5, restarts):
        initial.append(scale * np.concatenate([rng.standard_normal(width * d) / np.sqrt(d),
                                               rng.standard_normal(width) / np.sqrt(width)]))
    best = None
    for start in initial:
        res = minimize(objective, start, jac=True, method="L-BFGS-B",
                       options={"maxiter": 5000, "gtol": 1e-10, "ftol": 1e-15})
        if best is None or res.fun < best.fun:
            best = res
    w1, w2 = best.x[: width * d].reshape(width, d), best.x[width * d:].reshape(1, width)
    value = depth2_post_adaptation_loss(family, w1, w2, alpha)
    given = f" and {len(starts)} given start(s)" if starts else ""
    return value, w1, w2, f"numerical: L-BFGS from {restarts} seeded random starts (seed {seed}){given}"


def _torch_objective(family: LinearTaskFamily, width: int, alpha: float):
    """flat weights -> (loss, gradient) by torch autograd."""
    import torch

    d, fixed = family.dim, [torch.tensor(np.array(v)) for v in _family_arrays(family)]

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        params = torch.tensor(flat, dtype=torch.float64, requires_grad=True)
        w1, w2 = params[: width * d].reshape(width, d), params[width * d:].reshape(1, width)
        coef = _loss_coefficients(*_depth2_parts(w1, w2, *fixed), family.noise_var, family.support)
        loss = sum(c * alpha**j for j, c in enumerate(coef))
        (grad,) = torch.autograd.grad(loss, params)
        return loss.item(), grad.numpy()

    return objective


def _autograd_objective(family: LinearTaskFamily, width: int, alpha: float):
    """flat weights -> (loss, gradient) by HIPS autograd (numpy only)."""
    from autograd import value_and_grad

    loss_and_grad = value_and_grad(_flat_loss(family, width, alpha))

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        loss, grad = loss_and_grad(flat)
        return float(loss), grad

    return objective


def _flat_loss(family: LinearTaskFamily, width: int, alpha: float):
    """The exact loss as a function of the flat weights (vec W1 (h·d), w2 (h)), numpy operations only, so that
    autograd differentiates it (depth2_best_post_loss) and tests hold its gradient against torch's."""
    d, fixed = family.dim, _family_arrays(family)

    def loss(flat):
        w1, w2 = flat[: width * d].reshape(width, d), flat[width * d:].reshape(1, width)
        coef = _loss_coefficients(*_depth2_parts(w1, w2, *fixed), family.noise_var, family.support)
        return sum(c * alpha**j for j, c in enumerate(coef))

    return loss


def depth2_loss_of_nets(family: LinearTaskFamily, alpha: float):
    """A torch function (W1 (B, h, d), w2 (B, 1, h)) -> the exact loss of each of B nets at step α, (B,): the
    same formula, the nets along a leading axis, differentiable by autograd (theory.dynamics' flows)."""
    import torch

    sx, mu, offsets, weights, eye = (torch.tensor(np.array(v)) for v in _family_arrays(family))

    def losses(w1, w2):
        a = (w2 @ w1)[:, 0, :]  # (B, d) end-to-end
        p = w1.transpose(1, 2) @ w1 + (w2 * w2).sum((1, 2))[:, None, None] * eye  # (B, d, d)
        e = a[:, None, :] - mu + offsets  # (B, N, d)
        coef = _loss_coefficients(sx, p, a, e, weights, eye, family.noise_var, family.support)
        return sum(c * alpha**j for j, c in enumerate(coef))

    return losses


def gaussian_cubature(rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Stroud's degree-5 rule for N(0, I_r): points (2r² + 1, r) and weights, exact for polynomials of degree ≤ 5.

    0 with weight 2/(r+2); ±√(r+2) e_i with (4−r)/(2(r+2)²); ±√((r+2)/2)(e_i ± e_j), i < j, with 1/(r+2)².
    """
    r = require_int("rank", rank, 1)
    eye = np.eye(r)
    axis = np.sqrt(r + 2.0) * np.concatenate([eye, -eye])  # (2r, r)
    pairs = [sign_i * eye[i] + sign_j * eye[j] for i in range(r) for j in range(i + 1, r)
             for sign_i in (1, -1) for sign_j in (1, -1)]
    diag = np.sqrt((r + 2.0) / 2) * np.array(pairs).reshape(-1, r)  # (2r(r−1), r)
    points = np.concatenate([np.zeros((1, r)), axis, diag])
    weights = np.concatenate([[2.0 / (r + 2)], np.full(2 * r, (4.0 - r) / (2 * (r + 2) ** 2)),
                              np.full(len(diag), 1.0 / (r + 2) ** 2)])
    return points, weights


def _family_arrays(family: LinearTaskFamily) -> tuple[np.ndarray, ...]:
    """(Σx, μ, the cubature's task offsets F z_p (N, d), its weights (N,), I_d)."""
    points, weights = gaussian_cubature(family.rank)
    return family.input_cov, family.task_mean, points @ family.task_factor.T, weights, np.eye(family.dim)


def _depth2_inputs(family: LinearTaskFamily, w1, w2) -> tuple:
    w2 = np.asarray(w2, dtype=float)
    w1, w2 = check_layers([w1, w2.reshape(1, -1) if w2.ndim == 1 else w2])
    if w2.shape[0] != 1:
        raise ParameterError("w2", w2.shape, "a (1, h) row: scalar output")
    if w1.shape[1] != family.dim:
        raise ParameterError("w1", w1.shape, f"an (h, {family.dim}) matrix: in = d")
    return _depth2_parts(w1, w2, *_family_arrays(family))


def _depth2_parts(w1, w2, sx, mu, offsets, weights, eye) -> tuple:
    """(Σx, P, a, e at the cubature points (N, d), weights, I) for numpy arrays or torch tensors alike."""
    a = (w2 @ w1)[0]  # (d,) end-to-end w_e
    p = w1.T @ w1 + (w2 * w2).sum() * eye  # (d, d)
    return sx, p, a, a - mu + offsets, weights, eye


def _loss_coefficients(sx, p, a, e, weights, eye, s2: float, k) -> list:
    """c_j = ½ Σ_p w_p E[F_j | e_p] (+ ½s² in c_0), the expectations of the section doc."""
    b = e @ sx  # (N, d), b = Σx e
    q = (e * b).sum(-1) + s2  # (N,)
    b3, q3 = b[..., None, :], q[..., None]  # (…, N, 1, d), (…, N, 1): the quadratic forms sum over rows k
    psp, ps = (m[..., None, :, :] for m in (p @ sx @ p, p @ sx))  # (…, 1, d, d): rows k beside the cubature axis
    a = a[..., None, None, :]  # (…, 1, 1, d); a leading axis (…) holds several nets at once (theory.dynamics)

    def moment(*cs):  # E[Π c_jᵀg | e], summed over the row index k of quadratic forms; (…, N)
        return _g_moment(cs, b3, q3, sx, k).sum(-1)

    f = [(e * b).sum(-1), -2 * ((b @ p) * b).sum(-1),
         2 * moment(a, b3) + moment(psp, eye), -2 * moment(a, ps, eye), moment(a, a, sx, eye)]
    coef = [0.5 * (weights * fj).sum(-1) for fj in f]
    coef[0] = coef[0] + 0.5 * s2
    return coef


def _g_moment(cs, b, q, sx, k):
    """E[Π_j c_jᵀg | e] for up to 4 functionals c_j (broadcasting), g the support gradient given e."""
    beta = [(c * b).sum(-1) for c in cs]
    sig = {(i, j): ((cs[i] @ sx) * cs[j]).sum(-1) for i in range(len(cs)) for j in range(i + 1, len(cs))}
    total = 0.0
    for blocks in _set_partitions(tuple(range(len(cs)))):
        weight = _sample_weight(k, len(blocks), len(cs))
        if weight:
            term = weight
            for block in blocks:
                term = term * _block_moment(block, beta, sig, q)
            total = total + term
    return total


def _block_moment(block: tuple, beta: list, sig: dict, q):
    """E[ρⁿ Π_{j∈block} c_jᵀx] for one sample (section doc), n = len(block)."""
    total = 0.0
    for count, pairs, singles in _block_terms(block):
        term = count * q ** len(pairs) if pairs else count
        for pair in pairs:
            term = term * sig[pair]
        for j in singles:
            term = term * beta[j]
        total = total + term
    return total


@functools.cache
def _block_terms(block: tuple) -> tuple:
    """_block_moment's terms, one per partial matching of the block: (integer factor, pairs, unpaired indices)."""
    n, terms = len(block), []
    for pairs in _partial_matchings(block):
        t = n - 2 * len(pairs)
        paired = {i for pair in pairs for i in pair}
        terms.append((math.factorial(n) // math.factorial(n - t) * _double_factorial(n - t - 1), tuple(pairs),
                      tuple(j for j in block if j not in paired)))
    return tuple(terms)


def _sample_weight(k, blocks: int, n: int) -> float:
    """K(K−1)⋯(K−blocks+1)/Kⁿ: the share of sample assignments with ``blocks`` distinct samples; K = ∞ too."""
    if math.isinf(k):
        return 1.0 if blocks == n else 0.0
    return math.prod(k - i for i in range(blocks)) / k**n


@functools.cache
def _set_partitions(items: tuple) -> tuple:
    """Every partition of ``items`` into blocks (tuples), as a tuple of lists of blocks."""
    if not items:
        return ([],)
    first, rest, out = items[0], items[1:], []
    for part in _set_partitions(rest):
        out.append([(first,), *part])
        for i in range(len(part)):
            out.append([*part[:i], (first, *part[i]), *part[i + 1:]])
    return tuple(out)


@functools.cache
def _partial_matchings(items: tuple) -> tuple:
    """Every set of disjoint pairs (i, j), i < j, from ``items``, the empty set included."""
    if len(items) < 2:
        return ([],)
    first, rest = items[0], items[1:]
    out = list(_partial_matchings(rest))
    for i, partner in enumerate(rest):
        for tail in _partial_matchings(rest[:i] + rest[i + 1:]):
            out.append([(first, partner), *tail])
    return tuple(out)


def _double_factorial(n: int) -> int:
    return math.prod(range(n, 0, -2)) if n > 0 else 1
