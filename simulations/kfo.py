"""The Kronecker-factored meta-optimizer (KFO): a meta-learned gradient transform per parameter tensor.

The inner step becomes θ' = θ − α U(∇θ L) (Arnold, Iqbal & Sha 2021, section 5; learn2learn's
``optim.KroneckerTransform``), with U acting on each parameter's gradient G through small square
Kronecker factors instead of a full (numel × numel) preconditioner. With vec stacking columns:

  linear     U(G) = L G R (+ B)              vec U(G) = (Rᵀ ⊗ L) vec G (+ vec B)
  psd        U(G) = (LᵀL) G (RᵀR) (+ B)      P = (RᵀR) ⊗ (LᵀL), positive semi-definite
  nonlinear  U(G) = G + N(G),  N = K_m ∘ σ ∘ K_{m−1} ∘ ⋯ ∘ σ ∘ K_1,  K_j(H) = L_j H R_j + B_j

(m = ``hidden`` Kronecker layers, σ = ``activation`` between them, default ReLU; every K_j has
its bias B_j, of G's shape; ``bias`` adds B to the linear and psd forms.)

Initialisation makes an untrained KFO exactly the plain step U(G) = G: factors start at the
identity and biases at 0. The nonlinear form is residual: N's last left factor L_m starts at 0
(R_m at I, B_m at 0), so N ≡ 0 exactly, while ∂N/∂L_m = σ(·) R_m ≠ 0 lets it learn; zeroing
both L_m and R_m would be a saddle at which neither factor ever moves.

Factor shapes by the parameter's rank (``kronecker_factor_shapes``):
  0-d scalar                L (1, 1)                      U(g) = L g: a learned step scale
  1-d vector (n,)           L (n, n)                      U(g) = L g
  2-d weight (out, in)      L (out, out), R (in, in)      U(G) = L G R
  4-d conv (o, i, kh, kw)   L (i, i), R (kh·kw, kh·kw)    U(G)_o = L G_o R for each output channel's
                                                          (i, kh·kw) slice G_o: shared across channels
Other ranks (3-d, more than 4-d) raise ParameterError naming the parameter, unless the caller
leaves it out of ``names`` (then its gradient passes through unchanged).

``kfo_transform`` returns a ``simulations.maml.GradientTransform`` (as simulations.transforms does):
its apply(grads, params) -> directions is pure, so ``vmap`` batches it
over tasks with the factors shared, and ``simulations.training.meta_train(transform=...)``
meta-learns the factors jointly with the initialisation.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from simulations.maml import GradientTransform, Params
from theory.ground.errors import ParameterError, require_int

FORMS = ("linear", "psd", "nonlinear")
SUPPORTED_RANKS = "rank 0 (scalar), 1 (vector), 2 (linear weight) or 4 (conv kernel)"


def kronecker_factor_shapes(shape, name: str = "shape") -> tuple[int, int | None]:
    """(left dimension, right dimension or None) of the KFO factors for a parameter of ``shape``.

    Scalar → (1, None), (n,) → (n, None), (out, in) → (out, in), (o, i, kh, kw) → (i, kh·kw);
    any other rank raises ParameterError naming ``name`` (the parameter) and the supported ranks.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return 1, None
    if len(shape) == 1:
        return shape[0], None
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) == 4:
        return shape[1], shape[2] * shape[3]
    raise ParameterError(name, shape, f"a tensor of {SUPPORTED_RANKS}; leave it out of `names` to skip it")


def _matrix_view(h: torch.Tensor) -> torch.Tensor:
    """The matrix (or stack of matrices) the factors act on; a view of h."""
    if h.dim() == 0:
        return h.reshape(1, 1)  # (1, 1)
    if h.dim() == 1:
        return h.unsqueeze(-1)  # (n, 1)
    if h.dim() == 4:
        return h.flatten(2)  # (o, i, kh·kw): one (i, kh·kw) slice per output channel
    return h  # (out, in)


def _kronecker_map(h: torch.Tensor, left: torch.Tensor, right: torch.Tensor | None) -> torch.Tensor:
    """H ↦ left · H · right on h's matrix view (right = None: H ↦ left · H); h's shape in and out."""
    m = left @ _matrix_view(h)  # (…, n, m)
    if right is not None:
        m = m @ right  # (…, n, m)
    return m.reshape(h.shape)


def _linear_update(g: torch.Tensor, p: Params, name: str, psd: bool) -> torch.Tensor:
    """U(G) = L G R + B, or (LᵀL) G (RᵀR) + B when psd; missing R or B are skipped."""
    left, right, b = p[f"{name}:L"], p.get(f"{name}:R"), p.get(f"{name}:B")
    if psd:
        left = left.mT @ left  # (n, n), ⪰ 0
        right = None if right is None else right.mT @ right  # (m, m), ⪰ 0
    out = _kronecker_map(g, left, right)
    return out if b is None else out + b


def _network_update(g: torch.Tensor, p: Params, name: str, hidden: int, activation: Callable) -> torch.Tensor:
    """U(G) = G + N(G), N(G) = K_m(σ(⋯σ(K_1(G)))) with K_j(H) = L_j H R_j + B_j (module doc)."""
    h = g
    for j in range(hidden):
        if j:
            h = activation(h)
        h = _kronecker_map(h, p[f"{name}:L{j}"], p.get(f"{name}:R{j}")) + p[f"{name}:B{j}"]
    return g + h


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.requires_grad_(True)


def _initial_factors(name: str, tensor: torch.Tensor, form: str, bias: bool, hidden: int,
                     dtype: torch.dtype) -> Params:
    """One parameter's factors at the plain step: identities, zero biases, zero last L_m (nonlinear)."""
    left, right = kronecker_factor_shapes(tensor.shape, name)
    kw = {"dtype": dtype, "device": tensor.device}
    if form != "nonlinear":
        out = {f"{name}:L": _leaf(torch.eye(left, **kw))}
        if right is not None:
            out[f"{name}:R"] = _leaf(torch.eye(right, **kw))
        if bias:
            out[f"{name}:B"] = _leaf(torch.zeros(tensor.shape, **kw))
        return out
    out = {}
    for j in range(hidden):
        last = j == hidden - 1
        out[f"{name}:L{j}"] = _leaf(torch.zeros(left, left, **kw) if last else torch.eye(left, **kw))
        if right is not None:
            out[f"{name}:R{j}"] = _leaf(torch.eye(right, **kw))
        out[f"{name}:B{j}"] = _leaf(torch.zeros(tensor.shape, **kw))
    return out


def _named_tensors(params_or_model) -> dict[str, torch.Tensor]:
    if isinstance(params_or_model, torch.nn.Module):
        return dict(params_or_model.named_parameters())
    return dict(params_or_model)


def kfo_transform(params_or_model, form: str = "linear", names=None, bias: bool = False, hidden: int = 2,
                  dtype: torch.dtype = torch.float64, activation: Callable = torch.relu
                  ) -> GradientTransform:
    """A Kronecker-factored gradient transform U (module doc) for the named parameters, untrained.

    ``params_or_model``: an nn.Module or a dict name -> tensor (its shapes and device are used).
    ``names``: the parameters U acts on (None = all; for ANIL pass the head's name); others pass
    through unchanged. ``form``: 'linear', 'psd' or 'nonlinear'; ``bias`` adds B (linear, psd);
    ``hidden``: Kronecker layers of the nonlinear form. ``dtype`` must match the model's.
    Returns a GradientTransform: params with keys '{name}:L', ':R', ':B' (':L{j}' … for nonlinear),
    leaves requiring grad on the parameters' device, and apply(grads, params) -> directions.
    """
    if form not in FORMS:
        raise ParameterError("form", form, f"one of {FORMS}")
    hidden = require_int("hidden", hidden, 1)
    tensors = _named_tensors(params_or_model)
    names = list(tensors) if names is None else [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in tensors]
    if unknown:
        raise ParameterError("names", unknown, f"names of the model's parameters: {sorted(tensors)}")
    mismatched = {str(tensors[n].dtype) for n in names if tensors[n].dtype != dtype}
    if mismatched:
        raise ParameterError("dtype", dtype, f"the parameters' dtype ({', '.join(sorted(mismatched))})")
    t_params: Params = {}
    for n in names:
        t_params.update(_initial_factors(n, tensors[n], form, bias, hidden, dtype))
    covered = frozenset(names)

    def update(g: torch.Tensor, p: Params, name: str) -> torch.Tensor:
        if form == "nonlinear":
            return _network_update(g, p, name, hidden, activation)
        return _linear_update(g, p, name, psd=form == "psd")

    def apply(grads: Params, p: Params) -> Params:
        return {n: update(g, p, n) if n in covered else g for n, g in grads.items()}

    return GradientTransform(t_params, apply, form if form != "nonlinear" else None)


def implied_preconditioner(left, right=None, form: str = "linear") -> torch.Tensor:
    """The matrix P with vec U(G) = P vec G (column-major vec, no bias) for one gradient matrix G.

    linear: vec(L G R) = (Rᵀ ⊗ L) vec G;  psd: P = (RᵀR) ⊗ (LᵀL) (⪰ 0, and RᵀR is symmetric so no
    transpose appears). right = None (vectors, scalars): P = L or LᵀL. For a conv kernel, P acts
    on each output channel's vec(G_o), G_o (i, kh·kw). The nonlinear form has no single P.
    """
    if form not in ("linear", "psd"):
        raise ParameterError("form", form, "'linear' or 'psd' (the nonlinear form has no single P)")
    left = torch.as_tensor(left)
    right = None if right is None else torch.as_tensor(right)
    if form == "psd":
        left = left.mT @ left  # (n, n)
        right = None if right is None else right.mT @ right  # (m, m)
    # contiguous: torch 2.13's kron raises on a transposed view
    return left if right is None else torch.kron(right.mT.contiguous(), left)  # (n·m, n·m)
