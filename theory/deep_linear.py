"""One MAML inner step on a deep linear network, seen as a preconditioned step on its end-to-end map.

Setting (derived here):
    f(x) = W x,   W = W_L ⋯ W_1,   W_l of shape (h_l, h_{l-1}),  h_0 = in, h_L = out
    A_l = W_L ⋯ W_{l+1}  (out, h_l),  A_L = I
    B_l = W_{l-1} ⋯ W_1  (h_{l-1}, in), B_1 = I
    G = ∂L/∂W (out, in)  ⇒  ∂L/∂W_l = A_lᵀ G B_lᵀ   (chain rule through W = A_l W_l B_l)

One gradient step W_l ← W_l − α ∂L/∂W_l on the adapted layers moves the end-to-end map by
    W' − W = −α Σ_l A_l A_lᵀ G B_lᵀ B_l + O(α²),
so vec(W' − W) = −α P vec(G) + O(α²) with P = Σ_l (B_lᵀB_l) ⊗ (A_lA_lᵀ) (column-major vec,
vec(AXB) = (Bᵀ ⊗ A) vec X). A shallow model (L = 1) has P = I: a plain gradient step. When a
single layer adapts ("head": ANIL's W_L, or "bottom": W_1) the step is exactly linear in α.

Layers are listed bottom first: ``layers[0]`` is W_1 of shape (h_1, in).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import sympy as sp

from theory.ground.errors import ParameterError, require_int, require_real
from theory.task_family import LinearTaskFamily

ADAPT_CHOICES = ("all", "head", "bottom")


# -- the end-to-end map ------------------------------------------------------------------------
def end_to_end(layers) -> np.ndarray:
    """End-to-end map W = W_L ⋯ W_1 of a deep linear network, (out, in).

    ``layers`` is a non-empty sequence of 2-D arrays, bottom first, whose shapes chain:
    layers[l] has as many columns as layers[l-1] has rows.
    """
    mats = _check_layers(layers)
    w = mats[0]  # (h_1, in)
    for layer in mats[1:]:
        w = layer @ w  # (h_l, in)
    return w


def _check_layers(layers) -> list[np.ndarray]:
    """The layers as float64 matrices, after checking that there is one and that shapes chain."""
    if isinstance(layers, np.ndarray) or len(layers) < 1:
        raise ParameterError("layers", layers, "a non-empty list of 2-D arrays (depth >= 1), bottom first")
    mats = [np.asarray(layer, dtype=float) for layer in layers]
    for i, mat in enumerate(mats):
        if mat.ndim != 2:
            raise ParameterError(f"layers[{i}]", mat.shape, "a 2-D array")
        if i > 0 and mat.shape[1] != mats[i - 1].shape[0]:
            raise ParameterError(f"layers[{i}]", mat.shape,
                                 f"{mats[i - 1].shape[0]} columns, to chain with layers[{i - 1}]")
    return mats


def _check_adapt(adapt: str) -> str:
    if adapt not in ADAPT_CHOICES:
        raise ParameterError("adapt", adapt, "one of 'all', 'head' (only W_L) or 'bottom' (only W_1)")
    return adapt


def _outer_products(mats: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The partial products A_l = W_L ⋯ W_{l+1} and B_l = W_{l-1} ⋯ W_1 for l = 1..L (0-based lists)."""
    below = [np.eye(mats[0].shape[1])]  # B_1 = I (in, in)
    for layer in mats[:-1]:
        below.append(layer @ below[-1])  # (h_l, in)
    above = [np.eye(mats[-1].shape[0])]  # A_L = I (out, out)
    for layer in mats[:0:-1]:
        above.append(above[-1] @ layer)  # (out, h_{l-1})
    above.reverse()
    return above, below


def layer_gradients(layers, g) -> list[np.ndarray]:
    """Per-layer gradients ∂L/∂W_l = A_lᵀ G B_lᵀ, each of the shape of W_l.

    Chain rule through W = A_l W_l B_l: any loss of the end-to-end map has this layer gradient.
    """
    mats = _check_layers(layers)
    g = _check_matrix("g", g, (mats[-1].shape[0], mats[0].shape[1]))  # (out, in)
    above, below = _outer_products(mats)
    return [a.T @ g @ b.T for a, b in zip(above, below)]  # (h_l, h_{l-1}) each


def squared_loss(w, x, y) -> float:
    """Squared loss of the end-to-end map, L(W) = (1/2K) Σ_i ‖W x_i − y_i‖².

    ``x`` is (K, in), ``y`` is (K, out) or (K,) when out = 1. Half the mean squared error, as
    in the task family (README, "The task family").
    """
    w, x, y = _check_regression("w", w, x, y)
    resid = x @ w.T - y  # (K, out)
    return 0.5 * float(np.sum(resid**2)) / x.shape[0]


def squared_loss_gradient(w, x, y) -> np.ndarray:
    """End-to-end gradient of the squared loss, G = (1/K) (X Wᵀ − Y)ᵀ X, (out, in)."""
    w, x, y = _check_regression("w", w, x, y)
    resid = x @ w.T - y  # (K, out)
    return resid.T @ x / x.shape[0]  # (out, in)


def _check_regression(name: str, w, x, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w = np.asarray(w, dtype=float)
    if w.ndim != 2:
        raise ParameterError(name, w.shape, "an (out, in) matrix")
    x = _check_matrix("x", x, (None, w.shape[1]))  # (K, in)
    y = np.asarray(y, dtype=float)
    y = y[:, None] if y.ndim == 1 else y
    if y.shape != (x.shape[0], w.shape[0]):
        raise ParameterError("y", y.shape, f"shape ({x.shape[0]}, {w.shape[0]}) = (K, out)")
    return w, x, y


def _check_matrix(name: str, value, shape: tuple) -> np.ndarray:
    """``value`` as a float64 matrix of ``shape`` (None = any size on that axis)."""
    value = np.asarray(value, dtype=float)
    if value.ndim != 2 or any(s is not None and s != v for s, v in zip(shape, value.shape)):
        want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
        raise ParameterError(name, value.shape, f"a matrix of shape {want}")
    return value


# -- the exact depth-2 update ------------------------------------------------------------------
def depth2_update_symbolic() -> sp.MatAdd:
    """Exact end-to-end map after one step on both layers of a depth-2 net (all orders in α).

    W' = (W2 − α G W1ᵀ)(W1 − α W2ᵀ G)
       = W2 W1 − α (W2 W2ᵀ G + G W1ᵀ W1) + α² G W1ᵀ W2ᵀ G,
    derived with non-commutative sympy MatrixSymbols W1 (h, in), W2 (out, h), G (out, in) and the
    scalar Symbol alpha; the expression is returned expanded.
    """
    w1, w2, g, alpha = depth2_symbols()
    step_top = w2 - alpha * g * w1.T  # W2 − α ∂L/∂W2, (out, h)
    step_bottom = w1 - alpha * w2.T * g  # W1 − α ∂L/∂W1, (h, in)
    return (step_top * step_bottom).expand()


def depth2_symbols() -> tuple[sp.MatrixSymbol, sp.MatrixSymbol, sp.MatrixSymbol, sp.Symbol]:
    """The symbols (W1, W2, G, alpha) of ``depth2_update_symbolic``, in lambdify order."""
    out, hidden, inp = sp.symbols("out h in", integer=True, positive=True)
    return (sp.MatrixSymbol("W1", hidden, inp), sp.MatrixSymbol("W2", out, hidden),
            sp.MatrixSymbol("G", out, inp), sp.Symbol("alpha"))


def depth2_update_by_order() -> dict[int, sp.MatrixExpr]:
    """The depth-2 update W' split by powers of α: {k: M_k} with W' = Σ_k α^k M_k."""
    alpha = depth2_symbols()[3]
    orders: dict[int, list] = {}
    for term in depth2_update_symbolic().args:
        coeff, mat = term.as_coeff_mmul()
        k = int(sp.degree(coeff, alpha))
        orders.setdefault(k, []).append(sp.simplify(coeff / alpha**k) * mat)
    return {k: sp.MatAdd(*terms) if len(terms) > 1 else terms[0] for k, terms in sorted(orders.items())}


def depth2_update(w1, w2, g, alpha: float) -> np.ndarray:
    """Exact end-to-end map after one step on both layers, W' = (W2 − αGW1ᵀ)(W1 − αW2ᵀG), (out, in)."""
    w1, w2 = _check_layers([w1, w2])
    g = _check_matrix("g", g, (w2.shape[0], w1.shape[1]))  # (out, in)
    return (w2 - alpha * g @ w1.T) @ (w1 - alpha * w2.T @ g)


def latex_depth2_update() -> str:
    """LaTeX of the exact depth-2 update, W' = Σ_k α^k M_k, each M_k printed by sympy.latex."""
    parts = []
    for k, mat in depth2_update_by_order().items():
        terms = mat.args if isinstance(mat, sp.MatAdd) else (mat,)
        negative = all(t.as_coeff_mmul()[0] < 0 for t in terms)
        body = sp.latex(-mat if negative else mat)
        power = {0: "", 1: r"\alpha "}.get(k, rf"\alpha^{{{k}}} ")
        body = rf"\left({body}\right)" if power and len(terms) > 1 else body
        sign = "-" if negative else ("+" if parts else "")
        parts.append(f"{sign} {power}{body}".strip())
    return "W' = " + " ".join(parts)


# -- the implicit preconditioner ---------------------------------------------------------------
def preconditioner_factors(layers, adapt: str = "all") -> list[tuple[np.ndarray, np.ndarray]]:
    """Kronecker factors [(B_lᵀB_l, A_lA_lᵀ)] of P = Σ_l (B_lᵀB_l) ⊗ (A_lA_lᵀ), l over adapted layers.

    ``adapt`` = "all" sums l = 1..L; "head" keeps l = L (only W_L adapts, as in ANIL); "bottom"
    keeps l = 1 (only W_1 adapts). Each pair is ((in, in), (out, out)).
    """
    mats = _check_layers(layers)
    adapt = _check_adapt(adapt)
    above, below = _outer_products(mats)
    pairs = [(b.T @ b, a @ a.T) for a, b in zip(above, below)]  # ((in, in), (out, out))
    return {"all": pairs, "head": pairs[-1:], "bottom": pairs[:1]}[adapt]


def implicit_preconditioner(layers, adapt: str = "all") -> np.ndarray:
    """Implicit preconditioner P of one layerwise step, (out·in, out·in).

    vec(W' − W) = −α P vec(G) + O(α²),  P = Σ_l (B_lᵀB_l) ⊗ (A_lA_lᵀ), with column-major vec.
    P is symmetric positive semi-definite; P = I at depth 1. With adapt = "head" the step is exact,
    W' = W − α G B_LᵀB_L; with adapt = "bottom" it is exact too, W' = W − α A_1A_1ᵀ G.
    """
    factors = preconditioner_factors(layers, adapt)
    return sum(np.kron(right, left) for right, left in factors)


def preconditioned_step(w, g, p, alpha: float) -> np.ndarray:
    """Preconditioned step on the end-to-end map, W − α unvec(P vec G), (out, in); vec is column-major."""
    w = _check_matrix("w", w, (None, None))  # (out, in)
    g = _check_matrix("g", g, w.shape)  # (out, in)
    p = _check_matrix("p", p, (w.size, w.size))  # (out·in, out·in)
    step = p @ g.reshape(-1, order="F")  # (out·in,)
    return w - alpha * step.reshape(w.shape, order="F")


def factored_step(w, g, factors, alpha: float) -> np.ndarray:
    """The same step without forming P: W − α Σ_l (A_lA_lᵀ) G (B_lᵀB_l), (out, in).

    Equal to ``preconditioned_step`` with P = Σ_l R_l ⊗ L_l since unvec((R ⊗ L) vec G) = L G Rᵀ.
    ``factors`` is the list of (R_l, L_l) = (B_lᵀB_l, A_lA_lᵀ) from ``preconditioner_factors``.
    """
    w = _check_matrix("w", w, (None, None))  # (out, in)
    g = _check_matrix("g", g, w.shape)  # (out, in)
    step = np.zeros_like(w)
    for i, (right, left) in enumerate(factors):
        right = _check_matrix(f"factors[{i}][0]", right, (w.shape[1], w.shape[1]))  # (in, in)
        left = _check_matrix(f"factors[{i}][1]", left, (w.shape[0], w.shape[0]))  # (out, out)
        step += left @ g @ right.T
    return w - alpha * step


def latex_implicit_preconditioner() -> str:
    """LaTeX of the implicit preconditioner P and the first-order step it defines."""
    return (r"\operatorname{vec}(W' - W) = -\alpha P \operatorname{vec}(G) + O(\alpha^2), \quad "
            r"P = \sum_{l=1}^{L} \left(B_l^\top B_l\right) \otimes \left(A_l A_l^\top\right), \quad "
            r"A_l = W_L \cdots W_{l+1}, \; B_l = W_{l-1} \cdots W_1")


# -- capacity ----------------------------------------------------------------------------------
def function_class_rank_bound(widths, in_dim: int, out_dim: int) -> int:
    """Largest rank of an end-to-end map of a deep linear net, min(in, h_1, …, h_{L-1}, out)."""
    widths = _check_widths(widths)
    return min([require_int("in_dim", in_dim, 1), require_int("out_dim", out_dim, 1), *widths])


def factorize(w, widths) -> list[np.ndarray]:
    """Layers W_1..W_L (bottom first) of hidden widths h_1..h_{L-1} whose product is exactly W.

    The deep linear function class is {x ↦ Wx : rank W ≤ min width}: a product of layers through
    a width-h bottleneck has rank ≤ h, and any W of rank r ≤ min width factors as below. So with
    every width ≥ min(in, out) depth does not change capacity, only the geometry of the step.

    Construction: thin SVD W = U_r S V_rᵀ (r = numerical rank), W_1 = E_1 S^{1/L} V_rᵀ,
    W_l = E_l S^{1/L} E_{l-1}ᵀ, W_L = U_r S^{1/L} E_{L-1}ᵀ with E_l the first r columns of I_{h_l};
    the layers are balanced, W_{l+1}ᵀW_{l+1} = W_l W_lᵀ.
    """
    w = _check_matrix("w", w, (None, None))  # (out, in)
    widths = _check_widths(widths)
    u, s, vt = np.linalg.svd(w, full_matrices=False)  # (out, m), (m,), (m, in)
    tol = max(w.shape) * np.finfo(float).eps * (s[0] if s.size else 0.0)
    rank = int(np.sum(s > tol))
    if widths and min(widths) < rank:
        raise ParameterError("widths", widths, f"every hidden width >= rank(w) = {rank}")
    root = np.diag(s[:rank] ** (1.0 / (len(widths) + 1)))  # (r, r)
    dims = [w.shape[1], *widths, w.shape[0]]  # h_0 .. h_L
    layers = []
    for k in range(1, len(dims)):
        right = vt[:rank] if k == 1 else np.eye(rank, dims[k - 1])  # (r, h_{l-1})
        left = u[:, :rank] if k == len(dims) - 1 else np.eye(dims[k], rank)  # (h_l, r)
        layers.append(left @ root @ right)  # (h_l, h_{l-1})
    return layers


def _check_widths(widths) -> list[int]:
    if isinstance(widths, (str, bytes)) or np.ndim(widths) != 1:
        raise ParameterError("widths", widths, "a list of hidden widths h_1..h_{L-1}")
    return [require_int(f"widths[{i}]", h, 1) for i, h in enumerate(widths)]


# -- full depth-2 MAML, scalar output: the exact expected loss -----------------------------------
# Derived here. Network f(x) = w2 W1 x, W1 (h, d), w2 (1, h); every layer takes one step of size α.
# With a = w_e = W1ᵀw2ᵀ, e = a − w_τ ~ N(m, Σw), m = a − μ, and the support gradient
# g = Ŝe − Xᵀε/K, the exact update (depth2_update with G = gᵀ) is
#     r = w_e' − w_τ = e − αPg + α²(aᵀg)g,   P = W1ᵀW1 + ‖w2‖² I,
# so L(α) = ½E[rᵀΣx r] + ½s² = ½E[F0 + αF1 + α²F2 + α³F3 + α⁴F4] + ½s² with
#     F0 = eᵀΣx e, F1 = −2eᵀΣxPg, F2 = 2(aᵀg)(eᵀΣx g) + gᵀPΣxPg, F3 = −2(aᵀg)(gᵀPΣx g), F4 = (aᵀg)² gᵀΣx g.
# Step 1, given e: g = (1/K) Σ_i z_i with z_i = x_i ρ_i, ρ_i = x_iᵀe − ε_i, iid; (x, ρ) is a centred
# Gaussian pair with Cov(x) = Σx, Cov(x, ρ) = b = Σx e, Var ρ = q = eᵀΣx e + s². Isserlis on the n
# x-slots and n ρ-slots of E[ρⁿ Π_j c_jᵀx] gives Σ_M n!/(n−t)! (n−t−1)!! q^|M| Π_{(i,j)∈M} c_iᵀΣx c_j
# Π_{k∉M} c_kᵀb over partial matchings M of the x-slots (t = n − 2|M| x-slots pair with ρ-slots), and
# E[Π_{j≤n} c_jᵀg | e] = Σ_π K(K−1)⋯(K−|π|+1)/Kⁿ Π_{B∈π} E[Π_{j∈B} c_jᵀz] over set partitions π of the
# n factors (the samples equal within a block, distinct across blocks). Quadratic forms are
# gᵀBg = Σ_k (B_{k·}g)(g_k). So E[F_j | e] is a polynomial of degree ≤ 4 in e.
# Step 2: E over e = m + Fz, z ~ N(0, I_r), by Stroud's degree-5 Gaussian cubature (2r² + 1 points):
# exact for polynomials of degree ≤ 5. Nothing is approximated; K = ∞ keeps the all-distinct π only.
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


def first_order_surrogate_loss(family: LinearTaskFamily, layers, alpha: float) -> float:
    """Approximate MAML loss of a scalar-output deep linear net of any depth: exact only to O(α²).

    The preconditioned loss (theory.preconditioned_maml) at θ = the end-to-end map, P = implicit_preconditioner:
    it keeps the first-order step −αPg and drops the O(α²) terms of the layerwise update (at depth 2,
    α²(w_eᵀg)g), so it differs from the exact loss by O(α²) (at depth 2 by α²E[(w_eᵀg)(eᵀΣx g)] + O(α³)).
    """
    from theory.preconditioned_maml import preconditioned_post_adaptation_loss

    mats = _check_layers(layers)
    if mats[-1].shape[0] != 1 or mats[0].shape[1] != family.dim:
        raise ParameterError("layers", [m.shape for m in mats], f"a chain from in = {family.dim} to out = 1")
    theta = end_to_end(mats)[0]  # (d,)
    return preconditioned_post_adaptation_loss(family, theta, implicit_preconditioner(mats), alpha)


def depth2_best_post_loss(family: LinearTaskFamily, width: int, alpha: float, restarts: int = 6,
                          seed: int = 0, starts=()) -> tuple[float, np.ndarray, np.ndarray, str]:
    """min over (W1, w2) of the exact depth-2 loss at hidden width h: (value, W1, w2, method), numerical.

    L-BFGS on all h(d + 1) weights from ``restarts`` seeded random starts (scales 0.3 to 1.5 of
    N(0, 1/d), N(0, 1/h)) and from the given ``starts`` ((W1, w2) pairs, e.g. ANIL's optimum with
    w2 = v₀), gradients by torch autograd through the same formula; the best run is kept.
    A local search: the value is an upper bound on the true minimum, reached in practice when restarts agree.
    """
    import torch
    from scipy.optimize import minimize

    width = require_int("width", width, 1)
    alpha, restarts = require_real("alpha", alpha), require_int("restarts", restarts, 0 if starts else 1)
    d = family.dim
    fixed = [torch.tensor(np.array(v)) for v in _family_arrays(family)]

    def value_and_grad(flat: np.ndarray) -> tuple[float, np.ndarray]:
        params = torch.tensor(flat, dtype=torch.float64, requires_grad=True)
        w1, w2 = params[: width * d].reshape(width, d), params[width * d:].reshape(1, width)
        coef = _loss_coefficients(*_depth2_parts(w1, w2, *fixed), family.noise_var, family.support)
        loss = sum(c * alpha**j for j, c in enumerate(coef))
        (grad,) = torch.autograd.grad(loss, params)
        return loss.item(), grad.numpy()

    rng = np.random.default_rng(seed)
    initial = [np.concatenate([np.asarray(w1, float).reshape(width * d), np.asarray(w2, float).reshape(width)])
               for w1, w2 in starts]
    for scale in np.linspace(0.3, 1.5, restarts):
        initial.append(scale * np.concatenate([rng.standard_normal(width * d) / np.sqrt(d),
                                               rng.standard_normal(width) / np.sqrt(width)]))
    best = None
    for start in initial:
        res = minimize(value_and_grad, start, jac=True, method="L-BFGS-B",
                       options={"maxiter": 5000, "gtol": 1e-10, "ftol": 1e-15})
        if best is None or res.fun < best.fun:
            best = res
    w1, w2 = best.x[: width * d].reshape(width, d), best.x[width * d:].reshape(1, width)
    value = depth2_post_adaptation_loss(family, w1, w2, alpha)
    given = f" and {len(starts)} given start(s)" if starts else ""
    return value, w1, w2, f"numerical: L-BFGS from {restarts} seeded random starts (seed {seed}){given}"


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
    w1, w2 = _check_layers([w1, w2.reshape(1, -1) if w2.ndim == 1 else w2])
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
    b3, q3 = b[:, None, :], q[:, None]  # (N, 1, d), (N, 1): the quadratic forms sum over rows k
    psp, ps = p @ sx @ p, p @ sx  # (d, d)

    def moment(*cs):  # E[Π c_jᵀg | e], summed over the row index k of quadratic forms; (N,)
        return _g_moment(cs, b3, q3, sx, k).sum(-1)

    f = [(e * b).sum(-1), -2 * ((b @ p) * b).sum(-1),
         2 * moment(a, b3) + moment(psp, eye), -2 * moment(a, ps, eye), moment(a, a, sx, eye)]
    coef = [0.5 * (weights * fj).sum() for fj in f]
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
