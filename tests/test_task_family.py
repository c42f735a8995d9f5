"""The task family's validation and its sampler: shapes, seeds, dtypes and moments."""
import numpy as np
import pytest
import torch

from simulations.statistics import Estimate
from simulations.tasks import sample_classification_tasks, sample_regression_tasks
from tests.helpers import assert_close, assert_within_ci
from theory.ground.errors import ParameterError
from theory.task_family import LinearTaskFamily


@pytest.mark.parametrize("kwargs, parameter", [
    ({"dim": 0, "support": 5}, "dim"), ({"dim": 5, "support": 0}, "support"),
    ({"dim": 5, "support": 5, "rank": 6}, "rank"), ({"dim": 5, "support": 5, "rank": 0}, "rank"),
    ({"dim": 5, "support": 5, "noise_var": -0.1}, "noise_var"),
    ({"dim": 5, "support": 5, "noise_var": float("nan")}, "noise_var"),
    ({"dim": 2.5, "support": 5}, "dim"), ({"dim": 5, "support": 5, "query": 0}, "query"),
    ({"dim": 2, "support": 5, "input_cov": np.array([[1.0, 2.0], [2.0, 1.0]])}, "input_cov"),
])
def test_bad_parameters_name_themselves(kwargs, parameter):
    with pytest.raises(ParameterError) as info:
        LinearTaskFamily.subspace(**kwargs)
    assert info.value.parameter == parameter
    assert str(info.value).startswith(parameter)


def test_subspace_family_has_orthonormal_factor_and_requested_mean():
    family = LinearTaskFamily.subspace(12, 4, rank=3, mean_norm=2.0, task_scale=0.5, seed=1)
    u = family.task_factor / 0.5
    assert_close(u.T @ u, np.eye(3), 1e-12, "UᵀU")
    assert_close(np.linalg.norm(family.task_mean), 2.0, 1e-12, "‖μ‖")
    assert family.rank == 3 and family.isotropic_inputs


def test_general_covariance_is_reproduced_by_its_factor():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 3))
    family = LinearTaskFamily.from_covariances(5, 3, 4, task_cov=a @ a.T, input_cov=a @ a.T + np.eye(5))
    assert_close(family.task_cov, a @ a.T, 1e-10, "Σw")
    assert_close(family.input_cov, a @ a.T + np.eye(5), 1e-10, "Σx")
    assert family.rank == 3 and not family.isotropic_inputs


def test_sampler_shapes_seed_and_dtype():
    family = LinearTaskFamily.subspace(6, 3, 4, rank=2, noise_var=0.1)
    a, b = sample_regression_tasks(family, 7, 5), sample_regression_tasks(family, 7, 5)
    c = sample_regression_tasks(family, 7, 5, dtype=torch.float32)
    assert a.x_support.shape == (7, 3, 6) and a.y_query.shape == (7, 4) and a.weights.shape == (7, 6)
    assert torch.equal(a.x_query, b.x_query) and torch.equal(a.y_support, b.y_support)
    assert c.x_support.dtype == torch.float32
    assert torch.equal(c.x_support, a.x_support.float())  # float32 runs see the same tasks
    assert not torch.equal(a.x_support, sample_regression_tasks(family, 7, 6).x_support)


def test_sampled_labels_have_the_family_second_moment():
    """E[y²] = tr(Σx (μμᵀ + Σw)) + s² for the sampler (a check of its noise, inputs and weights)."""
    rng = np.random.default_rng(2)
    cov = rng.standard_normal((4, 4))
    family = LinearTaskFamily.from_covariances(4, 3, 5, task_cov=np.eye(4), input_cov=cov @ cov.T + np.eye(4),
                                               task_mean=np.ones(4), noise_var=0.3)
    batch = sample_regression_tasks(family, 40_000, 3)
    est = Estimate.from_samples((batch.y_query**2).mean(1))
    mu = family.task_mean
    assert_within_ci(np.trace(family.input_cov @ (np.outer(mu, mu) + family.task_cov)) + 0.3, est, "E[y²]")


def test_classification_tasks_are_separable_by_their_weights():
    family = LinearTaskFamily.subspace(8, 5, 10, rank=3)
    batch = sample_classification_tasks(family, 50, 0)
    assert set(torch.unique(batch.y_support).tolist()) <= {-1.0, 1.0}
    margins = torch.einsum("tnd,td->tn", batch.x_query, batch.weights) * batch.y_query
    assert (margins >= 0).all()


def test_task_batch_to_keeps_integer_labels_and_missing_weights():
    from simulations.tasks import TaskBatch

    batch = TaskBatch(torch.zeros(2, 3, 1, 4, 4), torch.zeros(2, 3, dtype=torch.long),
                      torch.zeros(2, 6, 1, 4, 4), torch.ones(2, 6, dtype=torch.long))
    moved = batch.to(dtype=torch.float64)
    assert moved.x_support.dtype == torch.float64 and moved.y_query.dtype == torch.long
    assert moved.weights is None and torch.equal(moved.y_query, batch.y_query)


def test_a_dimension_whose_matrices_cannot_fit_is_refused_before_any_is_allocated():
    from theory.ground.memory import MATRICES, available_bytes

    with pytest.raises(ParameterError, match="fit in memory") as err:
        LinearTaskFamily(10**7, 5, 10)
    assert err.value.parameter == "dim"
    available = available_bytes()
    assert available is not None and MATRICES * 8 * 10**14 > available
