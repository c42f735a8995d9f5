"""theory.structured_family: the closed forms of explore --theory-only in O(d r²), held to the stems' dense forms.

Every quantity is an identity with its dense counterpart (theory.shallow_maml, preconditioned_maml, meta_sgd,
anil_width, bayes_floor) on the same family (``StructuredFamily.dense``), compared at the scale of the
pre-adaptation loss (a value that is 0 in exact arithmetic is rounding noise on both sides); hypothesis draws the
structure (rotated subspace or diagonal Σw, isotropic or diagonal Σx, K finite or ∞, noise). Then the issue's
numbers at d = 10⁶, where no dense matrix fits.
"""
from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import paper_repro
from tests.helpers import IDENTITY_TOL, assert_close
from theory import anil_width, meta_sgd, preconditioned_maml, shallow_maml
from theory import structured_family as structured
from theory.bayes_floor import bayes_optimal_loss, spectral_bayes_floor
from theory.ground.errors import NoClosedForm, ParameterError
from theory.structured_family import StructuredFamily
from theory.task_family import LinearTaskFamily


@st.composite
def families(draw) -> StructuredFamily:
    d = draw(st.integers(1, 9))
    support = draw(st.sampled_from([1, 2, 5, 30, math.inf]))
    noise = draw(st.sampled_from([0.0, 0.3]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    inputs = None if draw(st.booleans()) else rng.uniform(0.2, 3.0, d)
    if draw(st.booleans()):
        return StructuredFamily.subspace(d, support, 7, draw(st.integers(1, d)), noise, draw(st.sampled_from([0, 2])),
                                         draw(st.sampled_from([0.5, 1.0])), inputs, seed)
    tasks = rng.uniform(0.0, 2.0, d) * (rng.random(d) < 0.7)  # some directions without task variance
    return StructuredFamily.diagonal(d, support, 7, tasks, inputs, rng.standard_normal(d), noise)


def assert_same(structured_value: float, dense_value: float, scale: float, what: str) -> None:
    """An identity at the scale of the pre-adaptation loss (both 0 up to rounding where the exact value is 0)."""
    assert_close(np.array([structured_value, scale]), np.array([dense_value, scale]), IDENTITY_TOL, what)


@settings(max_examples=60, deadline=None)
@given(families(), st.sampled_from([1, 2, 3]), st.floats(0.01, 0.6))
def test_every_closed_form_is_the_dense_one(family, steps, alpha):
    dense = family.dense()
    theta = shallow_maml.maml_optimal_init(dense)
    pre = structured.pre_adaptation_loss(family)
    assert_same(pre, shallow_maml.pre_adaptation_loss(dense, theta), 1.0, "pre-adaptation loss")
    pairs = {
        "P*": (structured.preconditioned_best_post_loss, preconditioned_maml.preconditioned_best_post_loss),
        "Meta-SGD": (structured.meta_sgd_best_post_loss, meta_sgd.meta_sgd_best_post_loss),
        "ANIL width 2": (lambda f: structured.rank_limited_best_post_loss(f, 2),
                         lambda f: anil_width.rank_limited_best_post_loss(f, 2)),
    }
    for what, (fast, slow) in pairs.items():
        assert_same(fast(family), slow(dense), pre, what)
    floor = spectral_bayes_floor(family.whitened_spectrum, family.support, family.noise_var, n_samples=2000, seed=1)
    dense_floor = bayes_optimal_loss(dense, n_samples=2000, seed=1)
    assert floor == dense_floor or abs(floor.value - dense_floor.value) <= IDENTITY_TOL * max(pre, 1e-300)
    if steps > 1 and not (family.isotropic_inputs or family.infinite_support):
        with pytest.raises(NoClosedForm, match="wishart_words"):
            structured.post_adaptation_loss(family, alpha, steps)
        return
    assert_same(structured.post_adaptation_loss(family, alpha, steps),
                shallow_maml.post_adaptation_loss(dense, theta, alpha, steps), pre, f"L after {steps} steps")
    star = structured.optimal_step_size(family, steps)
    assert_close(star, shallow_maml.optimal_step_size(dense, steps), 1e-8, "α*")  # a minimiser: flat at its bottom
    assert_same(structured.best_post_adaptation_loss(family, steps),
                shallow_maml.best_post_adaptation_loss(dense, steps), pre, "best loss")


def test_the_subspace_is_linear_task_family_s_own():
    """Same seed, same draws: U and μ bit for bit, so explore's structured and dense families are one family."""
    fast = StructuredFamily.subspace(40, 5, 20, 3, mean_norm=1.5, task_scale=0.7, seed=11)
    dense = LinearTaskFamily.subspace(40, 5, 20, rank=3, mean_norm=1.5, task_scale=0.7, seed=11)
    assert np.array_equal(fast.task_factor, dense.task_factor) and np.array_equal(fast.task_mean, dense.task_mean)
    full = StructuredFamily.subspace(6, 5, 20, 6, task_scale=2.0)  # rank d: U = I, Σw = V·I diagonal
    assert full.task_factor is None and np.array_equal(full.task_diag, np.full(6, 4.0))


def test_bad_structures_name_the_parameter():
    with pytest.raises(ParameterError, match="task_cov"):
        StructuredFamily(3, 5, 20, 0.0, np.ones(3), np.zeros(3))
    with pytest.raises(ParameterError, match="input_diag"):
        StructuredFamily.diagonal(3, 5, 20, np.ones(3), input_diag=np.ones(2))
    with pytest.raises(ParameterError, match="dim"):
        StructuredFamily.subspace(10**15, 5, 20, 2)  # 8 PB of vectors: refused before any is allocated
    for kwargs, name in (({"support": 0}, "support"), ({"noise_var": -1.0}, "noise_var"),
                         ({"input_diag": np.array([1.0, 0.0, 1.0])}, "input_diag"),
                         ({"task_diag": np.array([1.0, -1.0, 1.0])}, "task_diag")):
        args = {"dim": 3, "support": 5, "query": 20, "noise_var": 0.0, "input_diag": np.ones(3),
                "task_mean": np.zeros(3), "task_diag": np.ones(3), **kwargs}
        with pytest.raises(ParameterError, match=name):
            StructuredFamily(**args)
    with pytest.raises(ParameterError, match="task_scale"):
        StructuredFamily.subspace(5, 5, 20, 2, task_scale=0.0)


def _explore_json(*argv: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert paper_repro.main(["explore", "--theory-only", "--json", *argv]) == 0
    return json.loads(out.getvalue())["theory"]


def test_a_million_dimensions_give_the_documented_forms():
    """Issue 20's numbers: d = 10⁶, K = 5, a rank-2 subspace, noiseless: pre 1, shallow (d + 1)/(K + d + 1), P* 0.375
    (½ r(r + 1)/(K + r + 1)); the depth-2 search, which has no O(d) form, is null with its reason."""
    d, k = 10**6, 5
    theory = _explore_json("--dim", str(d))
    assert_close(theory["pre_adaptation_loss"], 1.0, IDENTITY_TOL, "pre")
    assert_close(theory["shallow_best_post_loss"], (d + 1) / (k + d + 1), IDENTITY_TOL, "shallow best")
    assert_close(theory["shallow_optimal_alpha"], k / (k + d + 1), IDENTITY_TOL, "α*")
    assert_close(theory["preconditioned_best_post_loss"], 0.375, IDENTITY_TOL, "P*")
    assert_close(theory["anil_best_post_loss"], 0.375, IDENTITY_TOL, "ANIL at width 64 ≥ r")
    assert theory["depth2_best_post_loss"] is None and "d = 200" in theory["notes"]["depth2_best_post_loss"]
    assert theory["bayes_optimal_loss"] == 0.0  # s² = 0, K ≥ r: exact
    assert_close(theory["implicit_best_post_loss"], (d - k) / d, 1e-9, "iMAML: λ → 0 is min-norm interpolation")


def test_without_an_o_d_form_small_d_falls_back_to_the_dense_forms_and_large_d_says_why():
    spectrum = ",".join(f"{1 + i / 8:g}" for i in range(8))
    small = _explore_json("--dim", "8", "--input-spectrum", spectrum, "--steps", "2", "--noise", "0.1")
    family = LinearTaskFamily.subspace(8, 5, 20, rank=2, noise_var=0.1, seed=0,
                                       input_cov=np.diag([1 + i / 8 for i in range(8)]))
    assert_close(small["shallow_best_post_loss"], shallow_maml.best_post_adaptation_loss(family, 2), IDENTITY_TOL,
                 "k = 2, Σx ≠ I: the word-moment engine on the dense family")
    big = ",".join(f"{1 + i / 300:g}" for i in range(300))
    large = _explore_json("--dim", "300", "--input-spectrum", big, "--steps", "2")
    assert large["shallow_best_post_loss"] is None and "wishart_words" in large["notes"]["shallow_best_post_loss"]
    assert large["implicit_best_post_loss"] is None and "d = 100" in large["notes"]["implicit_best_post_loss"]
    assert large["preconditioned_best_post_loss"] is not None and large["meta_sgd_best_post_loss"] is not None


def test_a_search_that_would_take_minutes_is_null_with_its_reason():
    """ANIL with μ outside the closed-form W's rows is a numerical search, O(d³) an evaluation: above d = 64 it is
    null with the reason (d = 100 took 84 s, d = 200 8 minutes), and depth 2, which starts from it, says so."""
    theory = _explore_json("--dim", "100", "--mean-norm", "1")
    assert theory["anil_best_post_loss"] is None and "d = 64" in theory["notes"]["anil_best_post_loss"]
    assert theory["depth2_best_post_loss"] is None and "ANIL" in theory["notes"]["depth2_best_post_loss"]
    assert theory["preconditioned_best_post_loss"] is not None  # the closed forms do not depend on μ (θ* = μ)
