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

import numpy as np

from theory.ground.errors import ParameterError, require_int
from theory.ground.lazy import sp
from theory.task_family import LinearTaskFamily

ADAPT_CHOICES = ("all", "head", "bottom")


# -- the end-to-end map ------------------------------------------------------------------------
def end_to_end(layers) -> np.ndarray:
    """End-to-end map W = W_L ⋯ W_1 of a deep linear network, (out, in).

    ``layers`` is a non-empty sequence of 2-D arrays, bottom first, whose shapes chain:
    layers[l] has as many columns as layers[l-1] has rows.
    """
    mats = check_layers(layers)
    w = mats[0]  # (h_1, in)
    for layer in mats[1:]:
        w = layer @ w  # (h_l, in)
    return w


def check_layers(layers) -> list[np.ndarray]:
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
    mats = check_layers(layers)
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
    w1, w2 = check_layers([w1, w2])
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
    mats = check_layers(layers)
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


# -- the first-order surrogate, any depth -------------------------------------------------------
def first_order_surrogate_loss(family: LinearTaskFamily, layers, alpha: float) -> float:
    """Approximate MAML loss of a scalar-output deep linear net of any depth: exact only to O(α²).

    The preconditioned loss (theory.preconditioned_maml) at θ = the end-to-end map, P = implicit_preconditioner:
    it keeps the first-order step −αPg and drops the O(α²) terms of the layerwise update (at depth 2,
    α²(w_eᵀg)g), so it differs from the exact loss by O(α²) (at depth 2 by α²E[(w_eᵀg)(eᵀΣx g)] + O(α³)).
    """
    from theory.preconditioned_maml import preconditioned_post_adaptation_loss

    mats = check_layers(layers)
    if mats[-1].shape[0] != 1 or mats[0].shape[1] != family.dim:
        raise ParameterError("layers", [m.shape for m in mats], f"a chain from in = {family.dim} to out = 1")
    theta = end_to_end(mats)[0]  # (d,)
    return preconditioned_post_adaptation_loss(family, theta, implicit_preconditioner(mats), alpha)
