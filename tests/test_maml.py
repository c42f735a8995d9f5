"""Functional MAML: the literal inner step, ANIL, first order, dtypes, training and divergence."""
import math

import numpy as np
import pytest
import torch

from simulations.linear_chain_maml import low_rank_meta_loss
from simulations.maml import InnerLoop, adapt, initial_params, meta_loss, task_losses
from simulations.models import add_linear_layers, deep_linear, linnet, shallow_linear
from simulations.statistics import Estimate
from simulations.tasks import sample_regression_tasks
from simulations.training import evaluate, meta_train
from tests.helpers import assert_close
from theory.ground.errors import DivergenceError, ParameterError
from theory.task_family import LinearTaskFamily

FAMILY = LinearTaskFamily.subspace(6, 4, 5, rank=2, noise_var=0.1, seed=1)


def test_one_inner_step_is_w_minus_alpha_gradient():
    batch = sample_regression_tasks(FAMILY, 1, 0)
    model = shallow_linear(6)
    params = initial_params(model)
    x, y = batch.x_support[0], batch.y_support[0]
    fast = adapt(model, params, x, y, InnerLoop(0.3))
    w = params[model.head_name].detach()[0]
    expected = w - 0.3 * x.T @ (x @ w - y) / 4
    assert_close(fast[model.head_name].detach()[0].numpy(), expected.numpy(), 1e-12)


def test_zero_steps_leave_the_loss_unchanged_and_one_step_lowers_it():
    batch = sample_regression_tasks(FAMILY, 200, 1)
    model = shallow_linear(6)
    params = initial_params(model)
    out0 = task_losses(model, params, batch, InnerLoop(0.2, steps=0))
    assert torch.equal(out0["pre_loss"], out0["post_loss"])
    out1 = task_losses(model, params, batch, InnerLoop(0.2, steps=1))
    assert out1["post_loss"].mean() < out1["pre_loss"].mean()


def test_anil_adapts_only_the_head():
    model = deep_linear(6, 3, 4)
    params = initial_params(model)
    batch = sample_regression_tasks(FAMILY, 1, 2)
    fast = adapt(model, params, batch.x_support[0], batch.y_support[0], InnerLoop(0.3, adapt="head"))
    for name, value in fast.items():
        changed = not torch.equal(value, params[name])
        assert changed == (name == model.head_name), name


def test_first_order_keeps_the_loss_and_drops_second_order_terms():
    model = deep_linear(6, 2, 4)
    batch = sample_regression_tasks(FAMILY, 8, 3)
    grads = {}
    for first_order in (False, True):
        params = initial_params(model)
        loss = meta_loss(model, params, batch, InnerLoop(0.3, first_order=first_order))
        grads[first_order] = torch.autograd.grad(loss, list(params.values()))
        grads[f"loss{first_order}"] = loss.item()
    assert math.isclose(grads["lossFalse"], grads["lossTrue"], rel_tol=1e-12)
    assert any((a - b).abs().max() > 1e-6 for a, b in zip(grads[False], grads[True]))


def test_low_rank_path_matches_functional_meta_gradient():
    model = linnet(6, 2)
    batch = sample_regression_tasks(FAMILY, 8, 4)
    inner = InnerLoop(0.2, steps=2)
    p1, p2 = initial_params(model), initial_params(model)
    g1 = torch.autograd.grad(meta_loss(model, p1, batch, inner), list(p1.values()))
    g2 = torch.autograd.grad(low_rank_meta_loss(model, p2, batch, inner), list(p2.values()))
    for a, b in zip(g1, g2):
        assert_close(b.numpy(), a.numpy(), 1e-10)


def test_float32_and_float64_agree():
    m64, m32 = deep_linear(6, 2, 4), deep_linear(6, 2, 4, dtype=torch.float32)
    b64 = sample_regression_tasks(FAMILY, 16, 5)
    b32 = sample_regression_tasks(FAMILY, 16, 5, dtype=torch.float32)
    l64 = meta_loss(m64, initial_params(m64), b64, InnerLoop(0.2)).item()
    l32 = meta_loss(m32, initial_params(m32), b32, InnerLoop(0.2)).item()
    assert math.isclose(l64, l32, rel_tol=1e-5)


def test_linnet_is_the_shallow_model_at_initialisation():
    shallow = shallow_linear(6, seed=3)
    wide = add_linear_layers(shallow, 3)
    assert len(wide.layers) == 4
    assert_close(wide.end_to_end().detach().numpy(), shallow.end_to_end().detach().numpy(), 1e-15)


def test_meta_training_is_reproducible_and_lowers_the_meta_loss():
    def sampler(n, gen):
        return sample_regression_tasks(FAMILY, n, gen)

    runs = [meta_train(deep_linear(6, 2, 8), sampler, InnerLoop(0.2), 60, 16, 0.02, seed=4) for _ in range(2)]
    assert runs[0].history == runs[1].history
    assert np.mean(runs[0].history[-10:]) < np.mean(runs[0].history[:10])
    est = evaluate(deep_linear(6, 2, 8), runs[0].params, sampler, InnerLoop(0.2), 300)
    assert isinstance(est["post_loss"], Estimate) and est["post_loss"].mean < est["pre_loss"].mean


def test_divergence_is_reported_not_returned():
    def sampler(n, gen):
        return sample_regression_tasks(FAMILY, n, gen)

    with pytest.raises(DivergenceError):
        meta_train(deep_linear(6, 3, 8), sampler, InnerLoop(50.0, steps=6), 5, 8, 0.01)
    with pytest.raises(FloatingPointError):
        Estimate.from_samples([1.0, float("nan")])


@pytest.mark.parametrize("kwargs, parameter", [
    ({"alpha": float("inf")}, "alpha"), ({"alpha": 0.1, "steps": -1}, "steps"),
    ({"alpha": 0.1, "adapt": "middle"}, "adapt"), ({"alpha": 0.1, "loss": "l1"}, "loss")])
def test_inner_loop_validates(kwargs, parameter):
    with pytest.raises(ParameterError) as info:
        InnerLoop(**kwargs)
    assert info.value.parameter == parameter


def test_isotropic_sampler_skips_the_identity_product_bit_for_bit():
    """x = A g with A = I exactly returns g itself: the same bytes as the explicit product g @ Iᵀ."""
    from simulations.tasks import make_generator, sample_inputs

    family = LinearTaskFamily.subspace(7, 3, 4, rank=2, seed=2)
    assert np.array_equal(family.input_factor, np.eye(7))
    fast = sample_inputs(family, (5, 7), make_generator(1))
    g = torch.randn((5, 7, 7), generator=make_generator(1), dtype=torch.float32).to(torch.float64)
    assert torch.equal(fast, g @ torch.eye(7, dtype=torch.float64).T)
    skewed = LinearTaskFamily.subspace(7, 3, 4, rank=2, seed=2, input_cov=np.diag(np.arange(1.0, 8.0)))
    x = sample_inputs(skewed, (5, 7), make_generator(1))
    assert torch.equal(x, g @ torch.as_tensor(skewed.input_factor).T)


def _runs_setup(loss="squared"):
    from simulations.tasks import sample_classification_tasks

    draw = sample_regression_tasks if loss == "squared" else sample_classification_tasks
    return lambda n, gen: draw(FAMILY, n, gen)


@pytest.mark.parametrize("case", ["maml", "anil", "first-order", "two-steps", "logistic", "kfo", "kfo-psd-only"])
def test_meta_train_runs_is_meta_train_run_by_run(case):
    """Independent runs stacked along a run axis (training.meta_train_runs) against meta_train one run at a time:
    the same meta-loss histories, parameters, transform factors and on_step calls, to float rounding."""
    from simulations.kfo import kfo_transform
    from simulations.training import meta_train_runs

    loss = "logistic" if case == "logistic" else "squared"
    inner = InnerLoop(0.2, steps=2 if case == "two-steps" else 1, first_order=case == "first-order",
                      adapt="head" if case == "anil" else "all", loss=loss)
    sampler, seeds = _runs_setup(loss), [3, 11, 12]
    models = [deep_linear(6, 3, 5, seed=s) for s in range(3)]
    transforms = ([kfo_transform(m, "psd" if case == "kfo-psd-only" else "linear", bias=case == "kfo") for m in models]
                  if case.startswith("kfo") else None)
    learn_init = case != "kfo-psd-only"
    calls = {}
    batched = meta_train_runs(models, sampler, inner, 12, seeds, 8, 0.02, transforms, learn_init=learn_init,
                              lr_decay=True, on_step=lambda r, i, p, t: calls.setdefault(r, []).append(
                                  (i, sum(v.sum().item() for v in p.values()))))
    for r, (model, seed) in enumerate(zip(models, seeds)):
        mine = []

        def record(i, p, t, mine=mine):
            mine.append((i, sum(v.sum().item() for v in p.values())))

        single = meta_train(model, sampler, inner, 12, 8, 0.02, seed, transforms[r] if transforms else None,
                            learn_init=learn_init, lr_decay=True, on_step=record)
        assert_close(np.array(batched[r].history), np.array(single.history), 1e-12, f"{case}, run {r}: history")
        for name, value in single.params.items():
            assert batched[r].params[name].shape == value.shape
            assert_close(batched[r].params[name], value, 1e-12, f"{case}, run {r}: {name}")
        if transforms:
            for key, value in single.transform.params.items():
                assert_close(batched[r].transform.params[key], value, 1e-12, f"{case}, run {r}: {key}")
        assert [i for i, _ in calls[r]] == [i for i, _ in mine] == list(range(13))
        assert_close(np.array([v for _, v in calls[r]]), np.array([v for _, v in mine]), 1e-12, "on_step's θ")
        assert batched[r].path == f"stacked:{single.path}"
        assert single.path == ("low_rank" if loss == "logistic" else "closed_form")


def test_the_path_is_chosen_once_and_reported():
    """training.maml_path decides how MAML is computed; meta_train and evaluate follow it; the result says which."""
    from simulations.kfo import kfo_transform
    from simulations.training import maml_path

    sampler = _runs_setup()
    chain = deep_linear(6, 2, 4, seed=0)
    assert maml_path(chain, InnerLoop(0.2)) == "closed_form"
    assert maml_path(chain, InnerLoop(0.2, loss="logistic")) == "low_rank"
    assert maml_path(chain, InnerLoop(0.2), kfo_transform(chain, "nonlinear")) == "functional"
    assert maml_path(torch.nn.Sequential(torch.nn.Linear(6, 1)), InnerLoop(0.2)) == "functional"
    assert meta_train(chain, sampler, InnerLoop(0.2), 2, 4, 0.01).path == "closed_form"
    nonlinear = kfo_transform(chain, "nonlinear")
    assert meta_train(chain, sampler, InnerLoop(0.2), 2, 4, 0.01, transform=nonlinear).path == "functional"


@pytest.mark.parametrize(("options", "name"), [({"iterations": -1}, "iterations"), ({"meta_batch": 0}, "meta_batch"),
                                               ({"meta_lr": 0.0}, "meta_lr"), ({"optimizer": "lbfgs"}, "optimizer"),
                                               ({"outer": "anil"}, "outer")])
def test_training_is_validated_once_for_both_loops(options, name):
    from simulations.training import Training, meta_train_runs

    with pytest.raises(ParameterError) as err:
        Training(**{"iterations": 3, **options})
    assert err.value.parameter == name
    if name != "outer":  # meta_train_runs has no Reptile; both loops reject the rest through Training
        with pytest.raises(ParameterError) as err:
            meta_train_runs([deep_linear(6, 2, 4)], _runs_setup(), InnerLoop(0.2), **{"iterations": 3, "seeds": [0],
                                                                                       **options})
        assert err.value.parameter == name


def test_meta_train_runs_reports_a_diverged_run_and_finishes_the_others():
    from simulations.training import meta_train_runs

    sampler = _runs_setup()
    big = deep_linear(6, 3, 8, seed=1)
    with torch.no_grad():
        for p in big.parameters():
            p.mul_(6.0)  # the inner step overshoots from here on
    models = [deep_linear(6, 3, 8, seed=0), big]
    inner = InnerLoop(2.0, steps=3)
    results = meta_train_runs(models, sampler, inner, 5, [1, 2], 8, 0.001)
    with pytest.raises(DivergenceError) as info:
        meta_train(big, sampler, inner, 5, 8, 0.001, seed=2)
    assert isinstance(results[1], DivergenceError) and results[1].iteration == info.value.iteration
    single = meta_train(models[0], sampler, inner, 5, 8, 0.001, seed=1)
    assert_close(np.array(results[0].history), np.array(single.history), 1e-12, "the healthy run")


def test_meta_train_runs_goes_one_after_another_where_it_cannot_stack():
    """Chains of different shapes, a transform without a fast path, a model that is no chain: meta_train per run,
    the same results and callbacks; one seed per model."""
    from simulations.kfo import kfo_transform
    from simulations.training import meta_train_runs

    sampler, inner = _runs_setup(), InnerLoop(0.1)
    models = [deep_linear(6, 2, 4, seed=0), deep_linear(6, 2, 5, seed=1)]
    transforms = [kfo_transform(m, "nonlinear") for m in models]
    calls = []
    results = meta_train_runs(models, sampler, inner, 3, [0, 1], 4, 0.01, transforms,
                              on_step=lambda r, i, p, t: calls.append((r, i)))
    for r, model in enumerate(models):  # the given transforms are untouched (meta_train trains its own in place)
        assert all(torch.equal(v, w) for v, w in zip(transforms[r].params.values(),
                                                     kfo_transform(model, "nonlinear").params.values()))
        single = meta_train(model, sampler, inner, 3, 4, 0.01, seed=r, transform=transforms[r])
        assert results[r].history == single.history
    assert calls == [(r, i) for r in range(2) for i in range(4)]
    with pytest.raises(ParameterError) as info:
        meta_train_runs(models, sampler, inner, 2, [0])
    assert info.value.parameter == "seeds"
