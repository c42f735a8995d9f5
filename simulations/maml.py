"""Functional MAML and ANIL, batched over the tasks of a meta-batch with torch.func.

One task's adaptation is a pure function of (parameters, support set); ``torch.func.vmap``
runs it for every task at once, and ordinary autograd differentiates the whole batch
through the inner loop (second order) or through the last step only (first order).

  θ'_τ = θ − α U(∇θ L_support,τ(θ))     (k times; U = identity or a gradient transform)
  meta-loss = mean_τ L_query,τ(θ'_τ)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vjp, vmap

from simulations.tasks import TaskBatch
from theory.ground.errors import ParameterError, require_int, require_real

Params = dict[str, torch.Tensor]


def squared_loss(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """½ mean (f(x) − y)²: half the mean squared error."""
    return 0.5 * ((pred - y) ** 2).mean()


def logistic_loss(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mean log(1 + exp(−y f(x))) for labels y ∈ {−1, +1}, exactly: logaddexp(0, z), whose slope is σ(z) everywhere
    (F.softplus is linear above z = 20, its slope 1 off σ(z) by up to 2e-9: theory.logistic's gradient differs)."""
    z = -y * pred
    return torch.logaddexp(torch.zeros_like(z), z).mean()


def cross_entropy_loss(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mean −log softmax(f(x))_y for integer class labels y (N-way few-shot classification)."""
    return F.cross_entropy(pred, y)


LOSSES = {"squared": squared_loss, "logistic": logistic_loss, "cross_entropy": cross_entropy_loss}


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction correct: sign(f(x)) = y for ±1 labels, argmax f(x) = y for integer class labels."""
    hits = pred.argmax(-1) == y if pred.dim() == y.dim() + 1 else torch.sign(pred) == y
    return hits.to(pred.dtype).mean()


@dataclass(frozen=True)
class InnerLoop:
    """How each task adapts: k steps of size α on its support set."""

    alpha: float  # α, inner step size
    steps: int = 1  # k, inner steps on the same support set
    first_order: bool = False  # drop second-order terms (FOMAML): the meta-gradient skips ∂θ'/∂θ
    adapt: str = "all"  # "all" = MAML, "head" = ANIL (only the output layer adapts)
    loss: str = "squared"  # "squared" (regression), "logistic" (y ∈ {−1, +1}) or "cross_entropy" (N-way)
    adapt_transform: bool = False  # also step the transform's own parameters per task (learn2learn GBML)

    def __post_init__(self):
        require_real("alpha", self.alpha)
        require_int("steps", self.steps, 0)
        if self.adapt not in ("all", "head"):
            raise ParameterError("adapt", self.adapt, "'all' (MAML) or 'head' (ANIL)")
        if self.loss not in LOSSES:
            raise ParameterError("loss", self.loss, f"one of {sorted(LOSSES)}")


@dataclass(frozen=True)
class GradientTransform:
    """A gradient transform U_φ for the inner step θ' = θ − α U_φ(∇θ L): its parameters and its map.

    ``params`` holds φ (name -> tensor, the meta-learned leaves); ``apply(grads, φ) -> directions``
    maps a task's gradients (name -> tensor) to its step directions and is pure, so ``vmap``
    batches it over tasks with φ shared. An untrained transform is the identity; None, where a
    transform is optional, means the plain gradient step.
    """

    params: Params
    apply: Callable[[Params, Params], Params]
    kronecker: str | None = None  # "linear" or "psd" where apply is simulations.kfo's U(G) = L G R (+ B) on
    # the keys '{name}:L', ':R', ':B' (then fast paths may apply it to G's factors); None otherwise

    def __call__(self, grads: Params) -> Params:
        """U_φ(grads) with this transform's own parameters φ."""
        return self.apply(grads, self.params)

    def with_params(self, params: Params) -> GradientTransform:
        """The same map U with other parameters (trained ones, or a task's fast copy)."""
        return GradientTransform(params, self.apply, self.kronecker)


def adapted_names(model: torch.nn.Module, inner: InnerLoop) -> list[str]:
    """The parameters the inner loop changes: all of them (MAML) or the head (ANIL).

    The head is ``model.head_names`` where the model lists several (a conv net's weight and bias),
    else ``model.head_name``.
    """
    names = [n for n, _ in model.named_parameters()]
    if inner.adapt == "all":
        return names
    return list(getattr(model, "head_names", None) or [model.head_name])


def adapt(model: torch.nn.Module, params: Params, x_s: torch.Tensor, y_s: torch.Tensor,
          inner: InnerLoop, transform: GradientTransform | None = None) -> Params:
    """θ'_τ after k inner steps on one task's support set (x_s (K, d), y_s (K,)); pure.

    With ``inner.adapt_transform`` the transform's parameters φ are per-task fast weights too:
    before each step after the first, φ ← φ − α ∂L_support(θ_i)/∂φ (see _transform_step).
    """
    names = adapted_names(model, inner)
    fast = {n: params[n] for n in names}
    frozen = {n: p for n, p in params.items() if n not in fast}
    loss_fn = LOSSES[inner.loss]

    def support_loss(fast_params: Params) -> torch.Tensor:
        return loss_fn(functional_call(model, {**frozen, **fast_params}, (x_s,)), y_s)

    t_fast, g_prev = (transform.params if transform is not None else None), None
    for step in range(inner.steps):
        g = grad(support_loss)(fast)
        if inner.first_order:
            g = {n: t.detach() for n, t in g.items()}
        if transform is not None:
            if inner.adapt_transform and step > 0:
                t_fast = _transform_step(transform.apply, t_fast, g_prev, g, inner)
            g_prev, g = g, transform.apply(g, t_fast)
        fast = {n: fast[n] - inner.alpha * g[n] for n in names}
    return {**frozen, **fast}


def _transform_step(apply: Callable[[Params, Params], Params], t_params: Params, g_prev: Params, g: Params,
                    inner: InnerLoop) -> Params:
    """φ − α ∂L_support(θ_i)/∂φ, where θ_i = θ_{i−1} − α U_φ(g_{i−1}) was the last step (as learn2learn).

    The support loss depends on φ only through that step, so by the chain rule
    ∂L/∂φ = −α J_φ[U_φ(g_{i−1})]ᵀ g_i, a vector-Jacobian product with g_i = ∇θ L(θ_i); the loss
    does not depend on φ before the first step, hence no change there. First order detaches it.
    """
    _, pull = vjp(lambda phi: apply(g_prev, phi), t_params)
    (g_phi,) = pull({n: -inner.alpha * t for n, t in g.items()})
    if inner.first_order:
        g_phi = {k: t.detach() for k, t in g_phi.items()}
    return {k: t_params[k] - inner.alpha * g_phi[k] for k in t_params}


def task_losses(model: torch.nn.Module, params: Params, batch: TaskBatch, inner: InnerLoop,
                transform: GradientTransform | None = None, with_accuracy: bool = False,
                with_pre: bool = True) -> dict[str, torch.Tensor]:
    """Per-task query losses before and after adaptation, batched over tasks: each (T,).

    Keys: 'post_loss', 'pre_loss' (if with_pre), and the matching '*_accuracy' if with_accuracy.
    """
    loss_fn = LOSSES[inner.loss]

    def metrics(prefix: str, pred: torch.Tensor, y_q: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {f"{prefix}_loss": loss_fn(pred, y_q)}
        if with_accuracy:
            out[f"{prefix}_accuracy"] = accuracy(pred, y_q)
        return out

    def one_task(x_s, y_s, x_q, y_q):
        fast = adapt(model, params, x_s, y_s, inner, transform)
        out = metrics("post", functional_call(model, fast, (x_q,)), y_q)  # pred (Q,)
        if with_pre:
            out.update(metrics("pre", functional_call(model, params, (x_q,)), y_q))
        return out

    return vmap(one_task)(batch.x_support, batch.y_support, batch.x_query, batch.y_query)


def meta_loss(model: torch.nn.Module, params: Params, batch: TaskBatch, inner: InnerLoop,
              transform: GradientTransform | None = None) -> torch.Tensor:
    """The MAML objective on a meta-batch: mean_τ L_query,τ(θ'_τ), a scalar."""
    return task_losses(model, params, batch, inner, transform, with_pre=False)["post_loss"].mean()


def initial_params(model: torch.nn.Module) -> Params:
    """The model's parameters as detached leaves that require grad (the meta-parameters θ)."""
    return {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
