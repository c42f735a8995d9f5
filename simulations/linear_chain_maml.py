"""Batched MAML for linear chains without forming any task's adapted weights (the fast path).

Over K support points a bias-free layer's gradient has rank ≤ K: ∇W_l L = D_lᵀ H_l with
D_l = ∂L/∂Z_l (K, out) at the layer's output and H_l its input (K, in). After j inner steps
W'_l = W_l − α Σ_i D_l⁽ⁱ⁾ᵀ H_l⁽ⁱ⁾, so the adapted layer applied to A (N, in) is
A W_lᵀ − α Σ_i (A H_l⁽ⁱ⁾ᵀ) D_l⁽ⁱ⁾: O(N K (in + out)) per task instead of O(in · out).
The objective and its meta-gradient equal simulations.maml.meta_loss (tests: to 1e-10).
``fast_path`` says which path applies; training.meta_train and training.evaluate take it for every LinearChain
it covers (closed form for the squared loss, low rank for other losses) and the functional path otherwise.

``closed_form_meta_loss`` is the same for the squared loss with the inner gradients written out
instead of taken by autograd: for L_τ = ½ mean (Z_L − Y)² over the N = K·out entries of the output,
D_L = (Z_L − Y)/N and D_l = D_{l+1} W'_{l+1} (back through layer l+1's current fast weight, itself
in low-rank form: D W' = D W − α Σ_i (D D⁽ⁱ⁾ᵀ) H⁽ⁱ⁾). The inner loop then builds a plain forward
graph, so the meta-gradient (second order included: D and H are functions of θ) is one ordinary
backward pass with no double-backward graph. Tests hold it to meta_loss and the per-task loop.

It also takes simulations.kfo's linear and psd transforms: U(G) = L G R + B applied to G = Dᵀ H is
L Dᵀ H R + B = (D Lᵀ)ᵀ (H R) + B, so the factors become (D Lᵀ, H R) and B moves the layer's base
weight by −αB per step; U costs O(K (out² + in²)) per task instead of O(out · in (out + in)).

Independent runs at once (``chain_run_losses``, what training.meta_train_runs uses): weights and transform
factors carry a leading run axis R ((R, out, in)) and the tasks are the runs' meta-batches one after the other
((R·T, N, d)); a product with a weight folds each run's tasks and points into one matrix, every other
operation is per task, so each run's meta-loss depends on its own tensors only and the gradient of their
sum is every run's own meta-gradient. Small chains are bound by per-operation overhead, which R runs pay
once: 3 runs at figure 3's sizes cost about 1.3 runs' time (``paper_repro.py bench``, "Stacked runs").
"""
from __future__ import annotations

import dataclasses

import torch

from simulations.maml import LOSSES, GradientTransform, InnerLoop, Params, accuracy, adapted_names
from simulations.models import LinearChain
from simulations.tasks import TaskBatch
from theory.ground.errors import ParameterError


def fast_path(model: torch.nn.Module, inner: InnerLoop, transform: GradientTransform | None = None) -> str | None:
    """Which of this module's paths computes MAML for (model, inner, transform): 'closed_form' (squared loss; no
    transform, or a linear/psd KFO shared by the tasks), 'low_rank' (any loss, no transform), or None (neither:
    use simulations.maml's functional path)."""
    if not isinstance(model, LinearChain):
        return None
    if inner.loss == "squared" and (transform is None or (transform.kronecker is not None
                                                          and not inner.adapt_transform)):
        return "closed_form"
    return "low_rank" if transform is None else None


def chain_run_losses(model: LinearChain, params: Params, batch: TaskBatch, inner: InnerLoop,
                     transform: GradientTransform | None = None) -> torch.Tensor:
    """Each run's MAML objective, (R,), for parameters and transform factors stacked along a leading run axis
    and the runs' meta-batches one after the other (module doc); ``fast_path``'s choice of path."""
    path = _require_fast_path(model, inner, transform)
    adapted = (_closed_form_adapted(model, params, batch, inner, transform) if path == "closed_form"
               else _low_rank_adapted(model, params, batch, inner))
    _, out = _chain_forward(*adapted, batch.x_query, inner.alpha)  # (R·T, Q, out)
    runs = next(iter(params.values())).shape[0]
    pred = out.squeeze(-1) if model.widths[-1] == 1 else out
    return torch.vmap(LOSSES[inner.loss])(pred.reshape(runs, -1, *pred.shape[1:]),
                                          batch.y_query.reshape(runs, -1, *batch.y_query.shape[1:]))


def low_rank_meta_loss(model: LinearChain, params: Params, batch: TaskBatch,
                       inner: InnerLoop) -> torch.Tensor:
    """mean_τ L_query,τ(θ'_τ) for a LinearChain, batched over tasks (module doc)."""
    _require_chain(model, "low_rank_meta_loss")
    return _query_loss(model, _low_rank_adapted(model, params, batch, inner), batch, inner)


def closed_form_meta_loss(model: LinearChain, params: Params, batch: TaskBatch, inner: InnerLoop,
                          transform: GradientTransform | None = None) -> torch.Tensor:
    """mean_τ L_query,τ(θ'_τ) for a LinearChain and the squared loss, inner gradients by hand (module doc);
    ``transform``: None (plain step) or a linear or psd KFO (simulations.kfo), shared by the tasks."""
    _require_chain(model, "closed_form_meta_loss")
    return _query_loss(model, _closed_form_adapted(model, params, batch, inner, transform), batch, inner)


def chain_meta_loss(model: LinearChain, params: Params, batch: TaskBatch, inner: InnerLoop,
                    transform: GradientTransform | None = None) -> torch.Tensor:
    """The MAML objective by ``fast_path``'s choice (closed form where it applies, else low rank)."""
    if fast_path(model, inner, transform) == "closed_form":
        return closed_form_meta_loss(model, params, batch, inner, transform)
    if transform is not None:
        raise ParameterError("transform", transform.kronecker, "None here (low_rank_meta_loss takes no transform)")
    return low_rank_meta_loss(model, params, batch, inner)


def chain_task_losses(model: LinearChain, params: Params, batch: TaskBatch, inner: InnerLoop,
                      transform: GradientTransform | None = None, with_accuracy: bool = False,
                      with_pre: bool = True) -> dict[str, torch.Tensor]:
    """Per-task query losses before and after adaptation, each (T,): simulations.maml.task_losses (same keys)
    computed by ``fast_path``'s choice, without forming any task's adapted weights."""
    path = _require_fast_path(model, inner, transform)
    if path == "closed_form":
        adapted = _closed_form_adapted(model, params, batch, inner, transform)
    elif torch.is_grad_enabled():
        adapted = _low_rank_adapted(model, params, batch, inner)
    else:  # values only (e.g. evaluation under no_grad), yet autograd takes the inner gradients: a local graph
        with torch.enable_grad():
            leaves = {n: p.detach().requires_grad_(True) for n, p in params.items()}
            weights, factors = _low_rank_adapted(model, leaves, batch, dataclasses.replace(inner, first_order=True))
        adapted = ([w.detach() for w in weights], [[(d.detach(), h.detach()) for d, h in f] for f in factors])
    loss_fn, squeeze = torch.vmap(LOSSES[inner.loss]), model.widths[-1] == 1
    fits = {"post": adapted}
    if with_pre:
        weights = [params[n] for n, _ in model.named_parameters()]
        fits["pre"] = (weights, [[] for _ in weights])
    out = {}
    for prefix, (weights, factors) in fits.items():
        _, pred = _chain_forward(weights, factors, batch.x_query, inner.alpha)  # (T, Q, out)
        pred = pred.squeeze(-1) if squeeze else pred
        out[f"{prefix}_loss"] = loss_fn(pred, batch.y_query)
        if with_accuracy:
            out[f"{prefix}_accuracy"] = torch.vmap(accuracy)(pred, batch.y_query)
    return out


def _require_fast_path(model: torch.nn.Module, inner: InnerLoop, transform: GradientTransform | None) -> str:
    path = fast_path(model, inner, transform)
    if path is None:
        raise ParameterError("transform", getattr(transform, "kronecker", None),
                             "None, or a linear or psd KFO with the squared loss (a LinearChain fast path)")
    return path


def _query_loss(model: LinearChain, adapted: tuple, batch: TaskBatch, inner: InnerLoop) -> torch.Tensor:
    """The mean query loss of the adapted chain (weights, factors) over every task."""
    _, out = _chain_forward(*adapted, batch.x_query, inner.alpha)  # (T, Q, out)
    return LOSSES[inner.loss](out.squeeze(-1) if model.widths[-1] == 1 else out, batch.y_query)


def _low_rank_adapted(model: LinearChain, params: Params, batch: TaskBatch, inner: InnerLoop) -> tuple:
    """(weights, per-layer factors (D, H)) after the inner loop, D by autograd (any loss)."""
    names = [n for n, _ in model.named_parameters()]
    adapted = [i for i, n in enumerate(names) if n in adapted_names(model, inner)]
    weights = [params[n] for n in names]
    factors: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in names]
    loss_fn, squeeze = LOSSES[inner.loss], model.widths[-1] == 1
    for _ in range(inner.steps):
        inputs, out = _chain_forward(weights, factors, batch.x_support, inner.alpha)  # (T, K, ·)
        pred = out.squeeze(-1) if squeeze else out
        loss = loss_fn(pred, batch.y_support) * batch.n_tasks  # Σ_τ L_τ: its Z_l,τ-gradient is ∂L_τ/∂Z_l,τ
        outputs = inputs[1:] + [out]
        ds = torch.autograd.grad(loss, [outputs[i] for i in adapted], create_graph=not inner.first_order)
        for i, d in zip(adapted, ds):  # d (T, K, out_l)
            factors[i].append((d, inputs[i] if not inner.first_order else inputs[i].detach()))
    return weights, factors


def _closed_form_adapted(model: LinearChain, params: Params, batch: TaskBatch, inner: InnerLoop,
                         transform: GradientTransform | None) -> tuple:
    """(weights, per-layer factors) after the inner loop, D written out for the squared loss (module doc)."""
    if inner.loss != "squared":
        raise ParameterError("loss", inner.loss, "'squared' (the closed-form inner gradient is the squared loss's)")
    if transform is not None and (transform.kronecker is None or inner.adapt_transform):
        raise ParameterError("transform", transform.kronecker,
                             "None or a linear or psd KFO with factors shared by the tasks (adapt_transform off)")
    names = [n for n, _ in model.named_parameters()]
    adapted = [i for i, n in enumerate(names) if n in adapted_names(model, inner)]
    weights = [params[n] for n in names]
    kron = {i: _kronecker_factors(transform, names[i]) for i in adapted} if transform is not None else {}
    factors: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in names]
    for _ in range(inner.steps):
        inputs, out = _chain_forward(weights, factors, batch.x_support, inner.alpha)  # (T, K, ·)
        d = (out - batch.y_support.reshape(out.shape)) / (out.shape[-2] * out.shape[-1])  # (T, K, out_L) = D_L
        grads = {}
        for i in range(len(weights) - 1, adapted[0] - 1, -1):  # D_i, from the output down to the lowest adapted
            grads[i] = d
            if i > adapted[0]:
                d = _back_through(weights[i], factors[i], d, inner.alpha)  # (T, K, in_i) = D_{i−1}
        for i in adapted:
            d, h = (grads[i], inputs[i]) if not inner.first_order else (grads[i].detach(), inputs[i].detach())
            left, right, bias = kron.get(i, (None, None, None))
            factors[i].append((d if left is None else _times(d, left.mT),
                               h if right is None else _times(h, right)))  # D Lᵀ, H R
            if bias is not None:
                weights[i] = weights[i] - inner.alpha * bias  # (out, in), shared by the tasks
    return weights, factors


def _kronecker_factors(transform: GradientTransform, name: str):
    """(L, R, B) of a linear or psd KFO for one weight (LᵀL and RᵀR for psd); Nones where it passes G through."""
    p = transform.params
    left, right, bias = p.get(f"{name}:L"), p.get(f"{name}:R"), p.get(f"{name}:B")
    if transform.kronecker == "psd":
        left = None if left is None else left.mT @ left  # (out, out), ⪰ 0
        right = None if right is None else right.mT @ right  # (in, in), ⪰ 0
    return left, right, bias


def _require_chain(model, caller: str) -> None:
    if not isinstance(model, LinearChain):
        raise TypeError(f"{caller} needs a LinearChain, got {type(model).__name__}")


def _back_through(w: torch.Tensor, layer_factors, d: torch.Tensor, alpha: float) -> torch.Tensor:
    """D W' = D (W − α Σ D⁽ⁱ⁾ᵀ H⁽ⁱ⁾) for D (T, K, out): the gradient at the layer's input, (T, K, in)."""
    back = _times(d, w)  # (T, K, in)
    for d_i, h_i in layer_factors:
        back = back - alpha * (d @ d_i.mT) @ h_i  # (T, K, K_i) @ (T, K_i, in)
    return back


def _chain_forward(weights, factors, x: torch.Tensor, alpha: float):
    """Each layer's input H_l and the chain's output, for fast weights W_l − α Σ Dᵀ H; x (T, N, d)."""
    inputs = []
    for w, layer_factors in zip(weights, factors):
        inputs.append(x)
        z = _times(x, w.mT)  # (T, N, out)
        for d, h in layer_factors:
            z = z - alpha * (x @ h.mT) @ d  # (T, N, K) @ (T, K, out)
        x = z
    return inputs, x


def _times(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """x @ m for x (T, N, a) and a matrix m (a, b) shared by the tasks, or for R runs' tasks x (R·T, N, a) and
    one matrix per run m (R, a, b): each run's tasks and points fold into one product."""
    if m.dim() == 2:
        return x @ m
    return (x.reshape(m.shape[0], -1, x.shape[-1]) @ m).reshape(*x.shape[:-1], m.shape[-1])
