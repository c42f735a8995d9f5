"""The Kronecker-factored meta-optimizer: identity at initialisation, the explicit Kronecker product
on vec(G) (edge shapes included), conv sharing, bad shapes, meta-gradients, vmap, adapt_transform."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from simulations.kfo import FORMS, implied_preconditioner, kfo_transform, kronecker_factor_shapes
from simulations.maml import GradientTransform, InnerLoop, adapt, initial_params, meta_loss, squared_loss, task_losses
from simulations.models import deep_linear, shallow_linear
from simulations.tasks import sample_regression_tasks
from simulations.training import evaluate, meta_train
from tests.helpers import assert_close
from theory import shallow_maml
from theory.ground.errors import ParameterError
from theory.ground.statistics import Z_CHECK
from theory.task_family import LinearTaskFamily

FAMILY = LinearTaskFamily.subspace(6, 4, 5, rank=2, noise_var=0.1, seed=1)
SHAPES = [(3, 5), (1, 4), (4, 1), (1, 1), (5,), (1,), (), (3, 2, 3, 3), (2, 1, 1, 1)]


class Tiny(nn.Module):
    """Every supported shape in one model: conv (3, 2, 3, 3) and (3,), weights (4, 12), (1, 4),
    (3, 1), (1, 3), (1, 1), vector (4,), scalar ()."""

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.conv = nn.Conv2d(2, 3, 3)
            self.fc = nn.Linear(12, 4)
            self.row, self.col = nn.Linear(4, 1, bias=False), nn.Linear(1, 3, bias=False)
            self.out, self.one = nn.Linear(3, 1, bias=False), nn.Linear(1, 1, bias=False)
            self.scale = nn.Parameter(torch.tensor(0.7))
        self.to(torch.float64)

    def forward(self, x):  # (K, 2, 4, 4) -> (K,)
        h = torch.tanh(self.fc(self.conv(x).flatten(1)))  # (K, 4)
        return self.scale * self.one(self.out(torch.tanh(self.col(self.row(h))))).squeeze(-1)


def _random_factors(t_params: dict, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen, dtype=v.dtype).requires_grad_(True)
            for k, v in t_params.items()}


def _vec(g: torch.Tensor) -> torch.Tensor:
    """Column-major vec of a matrix (a vector or scalar as itself)."""
    return g.reshape(g.shape[0], -1).mT.reshape(-1) if g.dim() == 2 else g.reshape(-1)


@pytest.mark.parametrize("form", FORMS)
def test_untrained_kfo_is_exactly_the_plain_step(form):
    model = Tiny()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 2, 4, 4, generator=gen, dtype=torch.float64)  # (K, channels, h, w)
    y = torch.randn(5, generator=gen, dtype=torch.float64)  # (K,)
    kfo = kfo_transform(model, form, bias=True)
    t_params, apply = kfo.params, kfo.apply
    grads = {n: torch.randn(p.shape, generator=gen, dtype=torch.float64) for n, p in model.named_parameters()}
    for n, g in apply(grads, t_params).items():
        assert_close(g.detach().numpy(), grads[n].numpy(), 1e-15, f"{form} {n} {tuple(g.shape)}")
    params = initial_params(model)
    for steps in (1, 3):
        inner = InnerLoop(0.1, steps)
        plain = adapt(model, params, x, y, inner)
        kfo = adapt(model, params, x, y, inner, GradientTransform(t_params, apply))
        for n in plain:
            assert_close(kfo[n].detach().numpy(), plain[n].detach().numpy(), 1e-15, f"{form} k={steps} {n}")


def test_factor_shapes():
    expected = [(3, 5), (1, 4), (4, 1), (1, 1), (5, None), (1, None), (1, None), (2, 9), (1, 1)]
    assert [kronecker_factor_shapes(s) for s in SHAPES] == expected


@pytest.mark.parametrize("form", ["linear", "psd"])
@pytest.mark.parametrize("shape", [s for s in SHAPES if len(s) < 4])
def test_apply_is_the_explicit_kronecker_product_on_vec_g(form, shape):
    kfo = kfo_transform({"w": torch.zeros(shape, dtype=torch.float64)}, form)
    t_params, apply = kfo.params, kfo.apply
    t_params = _random_factors(t_params, seed=len(shape) + sum(shape))
    g = torch.randn(shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = apply({"w": g}, t_params)["w"].detach()
    right = t_params["w:R"].detach() if "w:R" in t_params else None
    p = implied_preconditioner(t_params["w:L"].detach(), right, form)
    assert_close(_vec(out).numpy(), (p @ _vec(g)).numpy(), 1e-12, f"{form} {shape}")
    if form == "psd":
        assert_close(p.numpy(), p.mT.numpy(), 1e-14, "P symmetric")
        assert torch.linalg.eigvalsh(p).min() >= -1e-12 * max(1.0, p.abs().max().item())


def test_linear_preconditioner_has_the_transposed_right_factor():
    gen = torch.Generator().manual_seed(4)
    left, right, g = (torch.randn(s, generator=gen, dtype=torch.float64) for s in ((2, 2), (3, 3), (2, 3)))
    p = implied_preconditioner(left, right, "linear")
    assert_close(p.numpy(), torch.kron(right.T.contiguous(), left).numpy(), 0.0)
    assert_close(_vec(left @ g @ right).numpy(), (p @ _vec(g)).numpy(), 1e-12, "vec(LGR) = (Rᵀ ⊗ L) vec G")
    assert (torch.kron(right, left) @ _vec(g) - _vec(left @ g @ right)).abs().max() > 1e-3  # R ⊗ L is wrong


@pytest.mark.parametrize("form", ["linear", "psd"])
def test_conv_factors_are_shared_across_output_channels(form):
    conv = nn.Conv2d(2, 4, (2, 3)).to(torch.float64)
    kfo = kfo_transform(conv, form, names=["weight"])
    t_params, apply = kfo.params, kfo.apply
    assert t_params["weight:L"].shape == (2, 2) and t_params["weight:R"].shape == (6, 6)
    t_params = _random_factors(t_params, seed=5)
    g = torch.randn(4, 2, 2, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    out = apply({"weight": g, "bias": g[:, 0, 0, 0]}, t_params)
    assert torch.equal(out["bias"], g[:, 0, 0, 0])  # not in names: passes through
    p = implied_preconditioner(t_params["weight:L"].detach(), t_params["weight:R"].detach(), form)
    for o in range(4):
        u_o = out["weight"][o].detach().reshape(2, 6)  # (i, kh·kw)
        assert_close(_vec(u_o).numpy(), (p @ _vec(g[o].reshape(2, 6))).numpy(), 1e-12, f"channel {o}")


@pytest.mark.parametrize("shape", [(2, 3, 4), (1, 2, 3, 4, 5)])
def test_unsupported_ranks_raise_unless_excluded(shape):
    params = {"odd": torch.zeros(shape, dtype=torch.float64), "w": torch.zeros(2, 3, dtype=torch.float64)}
    with pytest.raises(ParameterError) as info:
        kfo_transform(params)
    assert info.value.parameter == "odd" and "rank 0" in str(info.value)
    kfo = kfo_transform(params, names=["w"])
    t_params, apply = kfo.params, kfo.apply
    assert set(t_params) == {"w:L", "w:R"}
    g = torch.ones(shape)
    assert apply({"odd": g}, t_params)["odd"] is g
    with pytest.raises(ParameterError):
        kronecker_factor_shapes(shape)


@pytest.mark.parametrize("kwargs, parameter", [({"form": "diag"}, "form"), ({"names": ["nope"]}, "names"),
                                               ({"form": "nonlinear", "hidden": 0}, "hidden"),
                                               ({"dtype": torch.float32}, "dtype")])
def test_bad_arguments_raise(kwargs, parameter):
    with pytest.raises(ParameterError) as info:
        kfo_transform(shallow_linear(3), **kwargs)
    assert info.value.parameter == parameter


@pytest.mark.parametrize("form", FORMS)
def test_meta_gradients_reach_every_factor(form):
    model = deep_linear(6, 3, 4)
    kfo = kfo_transform(model, form, bias=True)
    t_params, apply = kfo.params, kfo.apply
    if form == "nonlinear":  # at L_m = 0 only N's last layer gets a gradient: move it off zero first
        t_params = {k: (0.3 * torch.ones_like(v) if ":L1" in k else v.detach()).requires_grad_(True)
                    for k, v in t_params.items()}
    assert all(t.is_leaf and t.requires_grad for t in t_params.values())
    params = initial_params(model)
    batch = sample_regression_tasks(FAMILY, 8, 7)
    meta_loss(model, params, batch, InnerLoop(0.2, 2), GradientTransform(t_params, apply)).backward()
    for k, t in {**params, **t_params}.items():
        assert t.grad is not None and t.grad.abs().max() > 0, k


@pytest.mark.parametrize("adapt_transform", [False, True])
def test_batched_kfo_step_equals_a_per_task_loop(adapt_transform):
    model = deep_linear(6, 2, 4)
    kfo = kfo_transform(model, "linear", bias=True)
    t_params, apply = kfo.params, kfo.apply
    t_params = {k: (v.detach() + 0.1 * r.detach()).requires_grad_(True)
                for (k, v), r in zip(t_params.items(), _random_factors(t_params, 8).values())}
    params, batch = initial_params(model), sample_regression_tasks(FAMILY, 6, 9)
    inner = InnerLoop(0.2, 2, adapt_transform=adapt_transform)
    batched = task_losses(model, params, batch, inner, GradientTransform(t_params, apply))["post_loss"]
    for t in range(batch.n_tasks):
        fast = adapt(model, params, batch.x_support[t], batch.y_support[t], inner, GradientTransform(t_params, apply))
        loop = squared_loss(functional_call(model, fast, (batch.x_query[t],)), batch.y_query[t])
        assert_close(batched[t].item(), loop.item(), 1e-12, f"task {t}")


def test_adapt_transform_acts_from_the_second_step_as_learn2learn():
    model = deep_linear(6, 2, 4)
    kfo = kfo_transform(model, "psd", bias=True)
    t_params, apply = kfo.params, kfo.apply
    params, batch = initial_params(model), sample_regression_tasks(FAMILY, 1, 10)
    x, y = batch.x_support[0], batch.y_support[0]
    transform = GradientTransform(t_params, apply)
    one = [adapt(model, params, x, y, InnerLoop(0.3, 1, adapt_transform=a), transform) for a in (0, 1)]
    assert all(torch.equal(one[0][n], one[1][n]) for n in params)
    two = [adapt(model, params, x, y, InnerLoop(0.3, 2, adapt_transform=a), transform) for a in (0, 1)]
    assert max((two[0][n] - two[1][n]).abs().max() for n in params) > 1e-4

    def loss(p):  # the literal GBML sequence: step θ, then φ ← φ − α ∂L(θ₁)/∂φ, then step θ again
        return squared_loss(functional_call(model, p, (x,)), y)

    g0 = dict(zip(params, torch.autograd.grad(loss(params), list(params.values()), create_graph=True)))
    theta1 = {n: params[n] - 0.3 * u for n, u in apply(g0, t_params).items()}
    l1 = loss(theta1)
    g_phi = torch.autograd.grad(l1, list(t_params.values()), create_graph=True)
    phi1 = {k: v - 0.3 * gk for (k, v), gk in zip(t_params.items(), g_phi)}
    g1 = dict(zip(theta1, torch.autograd.grad(l1, list(theta1.values()), create_graph=True)))
    theta2 = {n: theta1[n] - 0.3 * u for n, u in apply(g1, phi1).items()}
    for n in params:
        assert_close(two[1][n].detach().numpy(), theta2[n].detach().numpy(), 1e-12, n)


def test_nonlinear_form_is_the_identity_until_trained():
    model = deep_linear(6, 2, 4)
    transform = kfo_transform(model, "nonlinear", hidden=2)
    assert sorted(transform.params) == sorted(f"{n}:{f}{j}" for n in dict(model.named_parameters())
                                          for f in "LRB" for j in range(2))
    grads = {n: torch.randn(p.shape, dtype=torch.float64) for n, p in model.named_parameters()}
    assert all(torch.equal(u, grads[n]) for n, u in transform(grads).items())
    result = meta_train(model, lambda n, gen: sample_regression_tasks(FAMILY, n, gen), InnerLoop(0.2), 1,
                        meta_batch=8, meta_lr=0.01, transform=transform)
    after = result.transform(grads)
    assert min((after[n] - grads[n]).abs().max() for n in grads) > 1e-4


def test_anil_kfo_covers_only_the_head():
    model = deep_linear(6, 3, 4)
    kfo = kfo_transform(model, "psd", names=[model.head_name])
    t_params, apply = kfo.params, kfo.apply
    assert set(t_params) == {f"{model.head_name}:L", f"{model.head_name}:R"}
    params = initial_params(model)
    meta_loss(model, params, sample_regression_tasks(FAMILY, 8, 11), InnerLoop(0.2, adapt="head"),
              GradientTransform(t_params, apply)).backward()
    assert t_params[f"{model.head_name}:R"].grad.abs().max() > 0


def test_short_meta_training_beats_the_shallow_models_best_step():
    family = LinearTaskFamily.subspace(20, 5, 10, rank=2, seed=5)
    model = shallow_linear(family.dim)

    def sampler(n, gen):
        return sample_regression_tasks(family, n, gen)

    transform = kfo_transform(model, "psd")
    result = meta_train(model, sampler, InnerLoop(0.5), 300, meta_batch=64, meta_lr=0.02, seed=12,
                        transform=transform, lr_decay=True)
    est = evaluate(model, result.params, sampler, InnerLoop(0.5), 5000, seed=13,
                   transform=result.transform)["post_loss"]
    best_shallow = shallow_maml.best_post_adaptation_loss(family)
    assert est.mean + Z_CHECK * est.stderr < best_shallow, (est, best_shallow)
    assert np.isfinite(result.history).all()


@pytest.mark.parametrize("form", ["linear", "psd"])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("adapt", ["all", "head"])
def test_closed_form_path_applies_kfo_to_the_gradient_factors(form, bias, first_order, adapt):
    """closed_form_meta_loss with a KFO (U on G's rank-K factors, (D Lᵀ, H R), B on the base weight) against
    the functional path's U(G) on each task's full G: same meta-loss and meta-gradient in θ and φ (float64)."""
    from simulations.linear_chain_maml import closed_form_meta_loss

    family = LinearTaskFamily.subspace(5, 3, 4, rank=2, seed=2)
    model = deep_linear(5, 3, 4, seed=1)
    batch = sample_regression_tasks(family, 4, 9)
    transform = kfo_transform(model, form, names=model.head_name if adapt == "head" else None, bias=bias)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for value in transform.params.values():
            value.add_(0.2 * torch.randn(value.shape, generator=gen, dtype=value.dtype))
    inner = InnerLoop(0.2, steps=2, first_order=first_order, adapt=adapt)
    grads = []
    for objective in (meta_loss, closed_form_meta_loss):
        params = initial_params(model)
        loss = objective(model, params, batch, inner, transform)
        grads.append((loss, torch.autograd.grad(loss, [*params.values(), *transform.params.values()])))
    (ref_loss, ref), (loss, got) = grads
    assert_close(loss.item(), ref_loss.item(), 1e-12)
    for a, b in zip(got, ref):
        assert_close(a.numpy(), b.numpy(), 1e-10)


def test_closed_form_path_refuses_the_nonlinear_form():
    from simulations.linear_chain_maml import closed_form_meta_loss

    model = deep_linear(5, 2, 3)
    transform = kfo_transform(model, "nonlinear")
    assert transform.kronecker is None and kfo_transform(model, "psd").kronecker == "psd"
    with pytest.raises(ParameterError) as info:
        closed_form_meta_loss(model, initial_params(model), None, InnerLoop(0.1), transform)
    assert info.value.parameter == "transform"
