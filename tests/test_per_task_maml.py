"""The per-task MAML loop (simulations.per_task_maml) against the batched functional path (float64).

Both compute mean_τ L_query,τ(θ'_τ) and its meta-gradient; they share no code beyond the loss
functions, so agreement to 1e-10 checks each against the other. The low-rank batched path of
simulations.experiments.benchmark is held to the same identity. The benchmark itself is smoke-tested with
tiny settings and no timing assertions (shared machines are noisy).
"""
from __future__ import annotations

import math

import pytest
import torch

from simulations.experiments.benchmark import benchmark_meta_training, format_benchmark
from simulations.linear_chain_maml import low_rank_meta_loss
from simulations.maml import GradientTransform, InnerLoop, initial_params, meta_loss
from simulations.models import deep_linear
from simulations.per_task_maml import per_task_meta_loss
from simulations.tasks import sample_classification_tasks, sample_regression_tasks
from tests.helpers import assert_close
from theory.task_family import LinearTaskFamily

IDENTITY_TOL = 1e-10  # float64: two exact computations of the same meta-gradient
DIM, SUPPORT, QUERY, TASKS = 6, 4, 5, 5
MODELS = {"shallow": (1, 1), "deep": (3, 4)}  # (depth, width)


def _setup(model_name: str, loss: str, seed: int = 3):
    """A float64 model and a meta-batch of regression (squared) or classification (logistic) tasks."""
    depth, width = MODELS[model_name]
    family = LinearTaskFamily.subspace(DIM, SUPPORT, QUERY, rank=3, mean_norm=1.0, seed=seed)
    sampler = sample_regression_tasks if loss == "squared" else sample_classification_tasks
    return deep_linear(DIM, depth, width, seed=seed), sampler(family, TASKS, seed)


def _loop_gradient(model, batch, inner):
    loss = per_task_meta_loss(model, batch, inner)
    model.zero_grad()
    loss.backward()  # fills the original model's .grad
    return loss, [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("adapt", ["all", "head"])
@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("model_name", list(MODELS))
def test_loop_matches_batched_meta_gradient(model_name, first_order, steps, adapt, loss):
    model, batch = _setup(model_name, loss)
    inner = InnerLoop(alpha=0.3, steps=steps, first_order=first_order, adapt=adapt, loss=loss)
    loop_loss, loop_grads = _loop_gradient(model, batch, inner)
    for name, fn in (("batched", meta_loss), ("low_rank", low_rank_meta_loss)):
        params = initial_params(model)
        value = fn(model, params, batch, inner)
        grads = torch.autograd.grad(value, list(params.values()))
        what = f"{name} vs loop, {model_name}, {adapt}, k={steps}, first_order={first_order}, {loss}"
        assert_close(value.item(), loop_loss.item(), IDENTITY_TOL, f"{what}: meta-loss")
        for (pname, _), g, ref in zip(model.named_parameters(), grads, loop_grads):
            assert_close(g, ref, IDENTITY_TOL, f"{what}: ∂/∂{pname}")


def test_first_and_second_order_differ():
    """The comparison above is not vacuous: the second-order terms change the deep meta-gradient."""
    model, batch = _setup("deep", "squared")
    _, second = _loop_gradient(model, batch, InnerLoop(alpha=0.3))
    _, first = _loop_gradient(model, batch, InnerLoop(alpha=0.3, first_order=True))
    assert max((a - b).abs().max().item() for a, b in zip(second, first)) > 1e-3


def test_loop_adapts_and_leaves_the_model_alone():
    """k = 0 gives the pre-adaptation query loss; k = 1 lowers it; the original weights never change."""
    model, batch = _setup("deep", "squared")
    before = [p.detach().clone() for p in model.parameters()]
    pre = per_task_meta_loss(model, batch, InnerLoop(alpha=0.3, steps=0))
    direct = sum(0.5 * ((model(x) - y) ** 2).mean() for x, y in zip(batch.x_query, batch.y_query)) / TASKS
    assert_close(pre.item(), direct.item(), IDENTITY_TOL, "k = 0 against the unadapted model")
    post = per_task_meta_loss(model, batch, InnerLoop(alpha=0.3, steps=1))
    assert post.item() < pre.item()
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p.detach(), b)


def test_low_rank_needs_a_linear_chain():
    model = torch.nn.Sequential(torch.nn.Linear(3, 1))
    with pytest.raises(TypeError, match="LinearChain"):
        low_rank_meta_loss(model, initial_params(model), None, InnerLoop(alpha=0.1))


def test_benchmark_smoke():
    """Tiny settings: every number finite, the paths agree, thread count restored; no timing claims."""
    threads = torch.get_num_threads()
    result = benchmark_meta_training(dim=8, depth=2, width=4, meta_batch=4, support=3, query=3,
                                     iterations=2, threads=1)
    assert torch.get_num_threads() == threads
    assert result["gradients_agree"] and result["max_rel_diff"] <= 1e-10
    for order in result["gradient_check"].values():
        assert set(order) == {"batched", "low_rank"}
    for timing in result["timing"].values():
        assert math.isfinite(timing["tasks_per_s"]) and timing["tasks_per_s"] > 0
        assert math.isfinite(timing["ratio"]) and len(timing["times_s"]) == 2
    assert all(math.isfinite(v) for v in result["loss_track"].values())
    assert not result["goal"]["at_goal_settings"] and not result["goal"]["met"]
    closed = result["closed_form"]  # one second-order squared-loss step: the closed form applies
    assert closed["agrees"] and set(closed["timing"]) == {"closed_form", "batched", "loop"}
    text = format_benchmark(result)
    assert "batched" in text and "loop" in text and "NOT at the goal settings" in text


def test_loop_with_kfo_matches_batched_kfo():
    """The per-task loop applies a gradient transform exactly as the batched path does."""
    from simulations.kfo import kfo_transform

    family = LinearTaskFamily.subspace(5, 3, 4, rank=2, seed=2)
    model = deep_linear(5, 2, 3, seed=1)
    batch = sample_regression_tasks(family, 4, 9)
    kfo = kfo_transform(model)
    t_params, apply = kfo.params, kfo.apply
    with torch.no_grad():
        for value in t_params.values():
            value.add_(0.1 * torch.randn(value.shape, generator=torch.Generator().manual_seed(3), dtype=value.dtype))
    inner = InnerLoop(0.2)
    params = initial_params(model)
    batched = meta_loss(model, params, batch, inner, GradientTransform(t_params, apply))
    g_batched = torch.autograd.grad(batched, [*params.values(), *t_params.values()])
    loop = per_task_meta_loss(model, batch, inner, GradientTransform(t_params, apply))
    g_loop = torch.autograd.grad(loop, [*model.parameters(), *t_params.values()])
    assert_close(loop.item(), batched.item(), 1e-12)
    for a, b in zip(g_loop, g_batched):
        assert_close(a.numpy(), b.numpy(), 1e-10)


def test_vision_benchmark_smoke():
    """The conv-net benchmark runs every method on both paths and reports finite numbers (no timing claims)."""
    from simulations.experiments.vision_benchmark import METHODS, benchmark_vision, format_vision_benchmark

    threads = torch.get_num_threads()
    result = benchmark_vision(depth=2, width=4, meta_batch=2, iterations=1, threads=1)
    torch.set_num_threads(threads)
    assert set(result["methods"]) == set(METHODS)
    for row in result["methods"].values():
        assert all(math.isfinite(v) and v > 0 for v in row.values())
    assert "maml+kfo" in format_vision_benchmark(result)


def test_peak_memory_measurement_prints_nothing(capfd):
    """The CPU profiler behind the memory column logs each start and stop to fd 2; the benchmark silences it."""
    from simulations.experiments.measure import peak_step_bytes

    x = torch.ones(1000, dtype=torch.float64, requires_grad=True)
    peak = peak_step_bytes(lambda: (x * x).sum().backward(), torch.device("cpu"))
    out, err = capfd.readouterr()
    assert peak > 0 and out == "" and err == "", (out, err)


def test_k_step_theory_benchmark_reports_the_closed_form():
    """bench's theory line: the optimal α and best loss it prints are the closed forms (timing is not tested)."""
    from simulations.experiments.benchmark import benchmark_k_step_theory, format_k_step_theory
    from theory.shallow_maml import best_post_adaptation_loss, optimal_step_size
    from theory.task_family import LinearTaskFamily

    result = benchmark_k_step_theory(dim=6, support=4, rank=2, noise_var=0.1, steps=5)
    family = LinearTaskFamily.subspace(6, 4, rank=2, noise_var=0.1)
    assert result["optimal_alpha"] == optimal_step_size(family, 5)
    assert result["best_post_loss"] == best_post_adaptation_loss(family, 5)
    assert result["seconds"] > 0 and "k = 5" in format_k_step_theory(result)


@pytest.mark.parametrize("adapt", ["all", "head"])
@pytest.mark.parametrize("steps", [0, 1, 2])
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("model_name", list(MODELS))
def test_closed_form_inner_gradient_matches_loop(model_name, first_order, steps, adapt):
    """The hand-written inner gradients (simulations.linear_chain_maml.closed_form_meta_loss) against the
    per-task loop's autograd: the same meta-loss and meta-gradient (squared loss, float64)."""
    from simulations.linear_chain_maml import closed_form_meta_loss

    model, batch = _setup(model_name, "squared")
    inner = InnerLoop(alpha=0.3, steps=steps, first_order=first_order, adapt=adapt)
    loop_loss, loop_grads = _loop_gradient(model, batch, inner)
    params = initial_params(model)
    value = closed_form_meta_loss(model, params, batch, inner)
    grads = torch.autograd.grad(value, list(params.values()))
    what = f"closed form vs loop, {model_name}, {adapt}, k={steps}, first_order={first_order}"
    assert_close(value.item(), loop_loss.item(), IDENTITY_TOL, f"{what}: meta-loss")
    for (pname, _), g, ref in zip(model.named_parameters(), grads, loop_grads):
        assert_close(g, ref, IDENTITY_TOL, f"{what}: ∂/∂{pname}")


def test_closed_form_with_several_outputs_matches_batched():
    """out > 1: D_L = (Z_L − Y)/(K·out), the mean over every output entry, as the squared loss takes it."""
    from simulations.linear_chain_maml import closed_form_meta_loss

    model = deep_linear(DIM, 2, 4, out=3, seed=1)
    family = LinearTaskFamily.subspace(DIM, SUPPORT, QUERY, rank=3, seed=1)
    base = sample_regression_tasks(family, TASKS, 1)
    gen = torch.Generator().manual_seed(2)
    y_s, y_q = (torch.randn(*t.shape, 3, generator=gen, dtype=torch.float64) for t in (base.y_support, base.y_query))
    batch = type(base)(base.x_support, y_s, base.x_query, y_q)
    inner = InnerLoop(alpha=0.3, steps=2)
    p1, p2 = initial_params(model), initial_params(model)
    g1 = torch.autograd.grad(meta_loss(model, p1, batch, inner), list(p1.values()))
    g2 = torch.autograd.grad(closed_form_meta_loss(model, p2, batch, inner), list(p2.values()))
    for a, b in zip(g1, g2):
        assert_close(b, a, IDENTITY_TOL, "closed form vs batched, out = 3")


def test_closed_form_rejects_other_losses_and_models():
    from simulations.linear_chain_maml import closed_form_meta_loss
    from theory.ground.errors import ParameterError

    model, batch = _setup("deep", "logistic")
    with pytest.raises(ParameterError) as info:
        closed_form_meta_loss(model, initial_params(model), batch, InnerLoop(alpha=0.1, loss="logistic"))
    assert info.value.parameter == "loss"
    other = torch.nn.Sequential(torch.nn.Linear(3, 1))
    with pytest.raises(TypeError, match="LinearChain"):
        closed_form_meta_loss(other, initial_params(other), None, InnerLoop(alpha=0.1))


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("adapt", ["all", "head"])
@pytest.mark.parametrize("steps", [0, 2])
@pytest.mark.parametrize("grad_mode", [True, False])
@pytest.mark.parametrize("model_name", list(MODELS))
def test_chain_task_losses_match_the_functional_path(model_name, grad_mode, steps, adapt, loss):
    """Per-task pre/post losses and accuracies of the fast path (what evaluate and meta_train use for a linear
    chain: closed form for the squared loss, low rank for the logistic) against simulations.maml.task_losses,
    task by task, with and without grad mode (evaluation runs under no_grad), and the meta-gradient through it."""
    from simulations.linear_chain_maml import chain_task_losses, fast_path
    from simulations.maml import task_losses

    model, batch = _setup(model_name, loss)
    inner = InnerLoop(alpha=0.3, steps=steps, adapt=adapt, loss=loss)
    assert fast_path(model, inner) == ("closed_form" if loss == "squared" else "low_rank")
    with_accuracy = loss == "logistic"
    ref = task_losses(model, initial_params(model), batch, inner, with_accuracy=with_accuracy)
    params = initial_params(model)
    with torch.set_grad_enabled(grad_mode):
        got = chain_task_losses(model, params, batch, inner, with_accuracy=with_accuracy)
    assert set(got) == set(ref)
    for key in ref:
        assert got[key].shape == (TASKS,)
        assert_close(got[key].detach(), ref[key].detach(), IDENTITY_TOL, f"{model_name}, {adapt}, k={steps}: {key}")
    assert got["post_loss"].requires_grad == grad_mode
    if grad_mode:
        grads = torch.autograd.grad(got["post_loss"].mean(), list(params.values()))
        _, loop_grads = _loop_gradient(model, batch, inner)
        for g, r in zip(grads, loop_grads):
            assert_close(g, r, IDENTITY_TOL, f"{model_name}, {adapt}, k={steps}: meta-gradient")


def test_fast_path_choice_and_refusals():
    """Which path a (model, inner, transform) gets, and that chain_task_losses refuses what none computes."""
    from simulations.kfo import kfo_transform
    from simulations.linear_chain_maml import chain_task_losses, fast_path
    from theory.ground.errors import ParameterError

    model, batch = _setup("deep", "squared")
    other = torch.nn.Sequential(torch.nn.Linear(DIM, 1))
    assert fast_path(other, InnerLoop(0.1)) is None
    assert fast_path(model, InnerLoop(0.1, loss="logistic"), kfo_transform(model, "linear")) is None
    assert fast_path(model, InnerLoop(0.1), kfo_transform(model, "psd")) == "closed_form"
    assert fast_path(model, InnerLoop(0.1, adapt_transform=True), kfo_transform(model, "linear")) is None
    assert fast_path(model, InnerLoop(0.1), kfo_transform(model, "nonlinear")) is None
    with pytest.raises(ParameterError) as info:
        chain_task_losses(model, initial_params(model), batch, InnerLoop(0.1), kfo_transform(model, "nonlinear"))
    assert info.value.parameter == "transform"


def test_meta_train_and_evaluate_take_the_fast_path_with_the_same_numbers(monkeypatch):
    """meta_train on a linear chain (closed form) follows the functional path's trajectory, and evaluate's
    estimates equal those of simulations.maml.task_losses on the same tasks (float64)."""
    from simulations import training
    from simulations.maml import task_losses

    family = LinearTaskFamily.subspace(DIM, SUPPORT, QUERY, rank=3, seed=5)
    model = deep_linear(DIM, 3, 4, seed=5)
    sampler = lambda n, gen: sample_regression_tasks(family, n, gen)  # noqa: E731
    inner = InnerLoop(alpha=0.3)
    fast = training.meta_train(model, sampler, inner, 20, meta_batch=8, meta_lr=0.01, seed=2)
    assert fast.path == "closed_form"
    monkeypatch.setattr(training, "maml_path", lambda *_: "functional")  # the functional path, for reference
    slow = training.meta_train(model, sampler, inner, 20, meta_batch=8, meta_lr=0.01, seed=2)
    assert slow.path == "functional"
    assert_close(torch.tensor(fast.history), torch.tensor(slow.history), 1e-9, "meta-loss histories")
    est = training.evaluate(model, fast.params, sampler, inner, n_tasks=50, seed=4)
    ref = task_losses(model, fast.params, sampler(50, torch.Generator().manual_seed(4)), inner)
    for key in ("pre_loss", "post_loss"):
        assert_close(est[key].mean, ref[key].mean().item(), IDENTITY_TOL, key)
