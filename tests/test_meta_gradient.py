"""The closed-form meta-gradient against autograd through the functional MAML loop."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.maml import GradientTransform, InnerLoop, meta_loss
from simulations.meta_gradient import shallow_meta_gradient
from simulations.models import shallow_linear
from simulations.tasks import sample_regression_tasks
from simulations.transforms import matrix_preconditioner, scalar_step
from tests.helpers import assert_close
from theory.task_family import LinearTaskFamily


@settings(max_examples=20, deadline=None, derandomize=True)
@given(st.integers(1, 8), st.integers(1, 6), st.integers(1, 5), st.floats(0.01, 1.0), st.integers(0, 999))
def test_closed_form_meta_gradient_matches_autograd(dim, support, query, alpha, seed):
    family = LinearTaskFamily.subspace(dim, support, query, noise_var=0.1, seed=seed)
    batch = sample_regression_tasks(family, 5, seed)
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(dim, generator=gen, dtype=torch.float64)
    precond = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
    closed = shallow_meta_gradient(theta, batch, alpha, precond)

    model = shallow_linear(dim)
    params = {model.head_name: theta[None].clone().requires_grad_(True)}
    p_param = {"precond": precond.clone().requires_grad_(True)}
    preconditioner = matrix_preconditioner(model.head_name, dim).with_params(p_param)
    loss = meta_loss(model, params, batch, InnerLoop(alpha), preconditioner)
    loss.backward()
    assert_close(closed.loss.item(), loss.item(), 1e-12, "loss")
    assert_close(closed.theta.numpy(), params[model.head_name].grad[0].numpy(), 1e-10, "∂/∂θ")
    assert_close(closed.precond.numpy(), p_param["precond"].grad.numpy(), 1e-10, "∂/∂P")

    # ∂/∂α through a scalar step exp(s)·α at s = 0: d/ds = α ∂L/∂α
    scale = scalar_step()
    fixed = preconditioner.with_params({"precond": precond})
    composed = GradientTransform(scale.params, lambda g, p: fixed(scale.apply(g, p)))
    loss_s = meta_loss(model, {model.head_name: theta[None]}, batch, InnerLoop(alpha), composed)
    (ds,) = torch.autograd.grad(loss_s, [scale.params["log_scale"]])
    assert_close(alpha * closed.alpha.item(), ds.item(), 1e-10, "∂/∂α")
