"""Expected words in Ŝ and fixed matrices, and the exact k-step MAML loss for any input covariance.

Notation (README, "The task family"): x ~ N(0, Σ) in R^d, X (K, d) with rows x_i, Ŝ = XᵀX/K.
A word is E[Ŝ A₁ Ŝ A₂ ⋯ A_{m−1} Ŝ] (a d × d matrix, ``word_moment``) or E tr(Ŝ A₁ ⋯ Ŝ A_m)
(``word_trace_moment``) for fixed d × d matrices A_j; derived here, exact for finite K (and K = ∞).

Method (Isserlis, summed over samples). Write each factor Ŝ = (1/K) Σ_i x_i x_iᵀ, so a word is
K^{−m} Σ over sample assignments (i_1, …, i_m) of E of a product of 2m Gaussian vector entries:
factor t has a left slot (x_{i_t}, row side) and a right slot (x_{i_t}ᵀ, column side). Isserlis
writes that expectation as a sum over perfect matchings π of the 2m slots, each pair (p, q)
giving Σ[index_p, index_q], restricted to pairs of slots whose samples are equal (independent
samples have zero cross-covariance). Exchange the sums: a fixed π is compatible exactly with the
assignments constant on each connected component of the graph that π induces on the m factors,
K^{c(π)} of them, so every (assignment, compatible matching) pair is counted once and

    E[word] = Σ_π K^{c(π) − m} · contraction(π).

(Two components on one sample are not double counted: their cross pairings are other matchings
π' with fewer components, counted under π'.) Each slot index sits in exactly one Σ-pair and one
fixed matrix (A_t joins the right slot of factor t to the left slot of factor t + 1, read as A_tᵀ
when walked backwards), so a contraction is a product of cyclic traces tr(Σ X₁ Σ X₂ ⋯) with
X ∈ {A_j, A_jᵀ} — times, for the open word, one path Σ X₁ Σ ⋯ Σ from the first factor's left slot
to the last factor's right slot. The (2m−1)!! matchings are enumerated once per pattern of equal
matrices (``_structure``, cached): cycles are brought to a canonical rotation/reflection
(tr M = tr Mᵀ reverses a cycle and transposes each X), equal patterns are merged with their
counts, and each distinct trace is evaluated once. K = ∞ keeps only c(π) = m (Ŝ = Σ).
Checks: m = 2 is wishart_moments.sample_moment_sandwich, Σ = I traces are isotropic_trace_moment.

The k-step loss (derived here). k plain inner steps of size α on one support set from θ give
e_k = (I − αŜ)^k e₀ + α B_k (1/K) Xᵀε with e₀ = θ − w_τ, B_k = Σ_{j<k} (I − αŜ)^j, and

    L_k = ½ tr(E[(I − αŜ)^k Σx (I − αŜ)^k] C) + ½ α² (s²/K) E tr(B_k² Ŝ Σx) + ½ s²

(E[(1/K²) εᵀX B_k Σx B_k Xᵀε] = (s²/K) E tr(B_k Σx B_k Ŝ), and B_k commutes with Ŝ).
With (I − αŜ)^k = Σ_a C(k, a)(−α)^a Ŝ^a and B_k = Σ_a C(k, a + 1)(−α)^a Ŝ^a (hockey stick),
L_k is a polynomial of degree 2k in α whose coefficients are the words E tr(Ŝ^a Σx Ŝ^b C)
(a, b ≤ k, m ≤ 2k) and E tr(Ŝ^n Σx) (n ≤ 2k − 1). L_k = ½ tr(M C) + const with M ⪰ 0, so θ = μ
is optimal for every α. k ≤ MAX_WORD_STEPS = 3 (m = 6: 10,395 matchings per word).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from functools import cache

import numpy as np
from numpy.polynomial import polynomial as npoly

from theory.ground.errors import NoClosedForm, ParameterError, require_int, require_real
from theory.task_family import LinearTaskFamily

MAX_WORD_LENGTH = 7  # (2m−1)!! matchings per word: 135,135 at m = 7 (about 8 s once per pattern), 2,027,025 at m = 8
MAX_WORD_STEPS = 3  # k steps need words of length 2k: k = 3 takes 0.5 s cold, 7 ms warm at d = 20; k = 4 needs m = 8

Token = tuple[int, bool]  # (label of a fixed matrix, walked transposed)


def word_moment(sigma: np.ndarray, matrices: Sequence[np.ndarray], support: int | float) -> np.ndarray:
    """E[Ŝ A₁ Ŝ A₂ ⋯ A_{m−1} Ŝ] for m = len(matrices) + 1 factors Ŝ = XᵀX/K, x ~ N(0, Σ); (d, d)."""
    sigma, mats, k = _validate(sigma, matrices, support, len(matrices) + 1)
    labels, mats, symmetric = _labels(mats, sigma.shape[0])
    m = len(labels) + 1
    values: dict[tuple[Token, ...], float] = {}
    total = np.zeros_like(sigma)
    for (c, path, cycles), count in _structure(labels, symmetric, False).items():
        weight = _weight(count, c, m, k)
        if weight:
            total += weight * _cycles_value(sigma, mats, cycles, values) * _chain(sigma, mats, path)
    return total


def word_trace_moment(sigma: np.ndarray, matrices: Sequence[np.ndarray], support: int | float) -> float:
    """E tr(Ŝ A₁ Ŝ A₂ ⋯ Ŝ A_m) for m = len(matrices) ≥ 1 factors Ŝ = XᵀX/K, x ~ N(0, Σ)."""
    sigma, mats, k = _validate(sigma, matrices, support, len(matrices))
    if not mats:
        raise ParameterError("matrices", "an empty sequence", "at least one d × d matrix")
    labels, mats, symmetric = _labels(mats, sigma.shape[0])
    values: dict[tuple[Token, ...], float] = {}
    total = 0.0
    for (c, _, cycles), count in _structure(labels, symmetric, True).items():
        weight = _weight(count, c, len(labels), k)
        if weight:
            total += weight * _cycles_value(sigma, mats, cycles, values)
    return float(total)


def anisotropic_loss_polynomial(family: LinearTaskFamily, theta, steps: int) -> np.ndarray:
    """Coefficients (lowest degree first, 2k + 1 of them) of L_k(α), the exact k-step loss (module doc)."""
    steps = _require_steps(steps, 0)
    sx, c, s2, k = family.input_cov, family.error_second_moment(theta), family.noise_var, family.support
    power = _power_trace_table(sx, c, k, steps)
    coef = np.zeros(2 * steps + 1)
    for a in range(steps + 1):
        for b in range(steps + 1):
            coef[a + b] += math.comb(steps, a) * math.comb(steps, b) * (-1) ** (a + b) * power[min(a, b), max(a, b)]
    if s2 and not family.infinite_support:
        noise = [word_trace_moment(sx, [np.eye(family.dim)] * n + [sx], k) for n in range(2 * steps - 1)]
        for a in range(steps):  # noise[a + b] = E tr(Ŝ^{a+b+1} Σx)
            for b in range(steps):
                coef[a + b + 2] += (s2 / k * math.comb(steps, a + 1) * math.comb(steps, b + 1)
                                    * (-1) ** (a + b) * noise[a + b])
    coef *= 0.5
    coef[0] += 0.5 * s2
    return coef


def anisotropic_post_adaptation_loss(family: LinearTaskFamily, theta, alpha: float, steps: int) -> float:
    """L_k(θ, α): the expected query loss per example after k inner steps of size α, any Σx (module doc)."""
    alpha = require_real("alpha", alpha)
    return float(npoly.polyval(alpha, anisotropic_loss_polynomial(family, theta, steps)))


def anisotropic_optimal_step_size(family: LinearTaskFamily, steps: int) -> float:
    """α* ≥ 0 minimising L_k(μ, α) (θ = μ is optimal for every α): the best real critical point, else 0."""
    steps = _require_steps(steps, 1)
    coef = anisotropic_loss_polynomial(family, family.task_mean, steps)
    roots = npoly.polyroots(npoly.polyder(coef)) if np.any(coef[1:]) else np.array([])
    real = [float(z.real) for z in np.atleast_1d(roots) if abs(z.imag) < 1e-9 * max(1.0, abs(z)) and z.real > 0]
    return min(real, key=lambda z: npoly.polyval(z, coef), default=0.0)


def anisotropic_best_post_adaptation_loss(family: LinearTaskFamily, steps: int) -> float:
    """min over α of L_k(μ, α): the lowest loss k plain steps of one size reach, any Σx."""
    alpha = anisotropic_optimal_step_size(family, steps)
    return anisotropic_post_adaptation_loss(family, family.task_mean, alpha, steps)


def _require_steps(steps, minimum: int) -> int:
    steps = require_int("steps", steps, minimum)
    if steps > MAX_WORD_STEPS:
        raise NoClosedForm(f"k > {MAX_WORD_STEPS} inner steps with a general input covariance: only simulation answers")
    return steps


# -- the matching sum -------------------------------------------------------------------------
def _weight(count: int, components: int, m: int, support: float) -> float:
    """count · K^{c − m}; K = ∞ keeps the c = m matchings only (Ŝ = Σ)."""
    if math.isinf(support):
        return float(count) if components == m else 0.0
    return count * float(support) ** (components - m)


def _matchings(slots: tuple[int, ...]):
    """Every perfect matching of ``slots`` as a dict slot -> partner."""
    if not slots:
        yield {}
        return
    first, rest = slots[0], slots[1:]
    for i, partner in enumerate(rest):
        for tail in _matchings(rest[:i] + rest[i + 1:]):
            yield {first: partner, partner: first, **tail}


@cache
def _structure(labels: tuple[int, ...], symmetric: frozenset, closed: bool) -> Counter:
    """Counter over (c(π), open path, sorted canonical cycles) of the matchings of a word's 2m slots.

    ``labels[j]`` names A_{j+1} (equal matrices share a label); a closed word has m labels, an
    open one m − 1. Slot 2t is factor t's left slot, 2t + 1 its right slot.
    """
    m = len(labels) + (0 if closed else 1)
    out: Counter = Counter()
    for partner in _matchings(tuple(range(2 * m))):
        parent = list(range(m))
        for p, q in partner.items():
            parent[_find(parent, p // 2)] = _find(parent, q // 2)
        components = len({_find(parent, t) for t in range(m)})
        visited: set[int] = set()
        path = None if closed else _walk(0, partner, labels, symmetric, closed, visited)
        cycles = []
        for start in range(2 * m):
            if start not in visited:
                cycles.append(_canonical(_walk(start, partner, labels, symmetric, closed, visited), symmetric))
        out[(components, path, tuple(sorted(cycles)))] += 1
    return out


def _walk(start: int, partner: dict, labels, symmetric, closed: bool, visited: set) -> tuple[Token, ...]:
    """Tokens X₁, X₂, … of Σ X₁ Σ X₂ ⋯ walked from slot ``start`` (a cycle, or the open path from slot 0)."""
    m2 = 2 * (len(labels) + (0 if closed else 1))
    tokens, slot = [], start
    while True:
        visited.add(slot)
        slot = partner[slot]
        visited.add(slot)
        if not closed and slot == m2 - 1:
            return tuple(tokens)
        t = slot // 2
        if slot % 2:  # right slot of factor t -> left slot of t + 1 through A_{t+1}
            j, flipped, slot = t, False, (2 * t + 2) % m2
        else:  # left slot of factor t -> right slot of t − 1 through A_tᵀ
            j, flipped, slot = (t - 1) % len(labels), True, (2 * t - 1) % m2
        label = labels[j]
        tokens.append((label, flipped and label not in symmetric))
        if slot == start:
            return tuple(tokens)


def _canonical(cycle: tuple[Token, ...], symmetric: frozenset) -> tuple[Token, ...]:
    """The least rotation of tr(Σ X₁ Σ X₂ ⋯) or of its transpose (reversed, each X transposed)."""
    reverse = tuple((label, not flipped and label not in symmetric) for label, flipped in reversed(cycle))
    return min(seq[i:] + seq[:i] for seq in (cycle, reverse) for i in range(len(seq)))


def _find(parent: list, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


# -- numerics ---------------------------------------------------------------------------------
def _chain(sigma: np.ndarray, mats: list, tokens: tuple[Token, ...]) -> np.ndarray:
    """Σ X₁ Σ X₂ ⋯ X_n Σ for the tokens X_j; (d, d)."""
    out = sigma
    for label, flipped in tokens:
        out = out @ (mats[label].T if flipped else mats[label]) @ sigma
    return out


def _cycles_value(sigma: np.ndarray, mats: list, cycles: tuple, values: dict) -> float:
    """Π tr(Σ X₁ Σ X₂ ⋯ Σ X_n) over the cycles, each distinct trace computed once (``values``)."""
    out = 1.0
    for cycle in cycles:
        if cycle not in values:
            label, flipped = cycle[-1]
            values[cycle] = float(np.trace(_chain(sigma, mats, cycle[:-1]) @ (mats[label].T if flipped
                                                                             else mats[label])))
        out *= values[cycle]
    return out


def _labels(mats: list, dim: int) -> tuple[tuple[int, ...], list, frozenset]:
    """One label per distinct matrix (np.array_equal), the distinct matrices, and the symmetric labels."""
    distinct: list[np.ndarray] = []
    labels = []
    for a in mats:
        label = next((i for i, b in enumerate(distinct) if np.array_equal(a, b)), len(distinct))
        if label == len(distinct):
            distinct.append(a)
        labels.append(label)
    return tuple(labels), distinct, frozenset(i for i, a in enumerate(distinct) if np.array_equal(a, a.T))


def _validate(sigma, matrices, support, m: int) -> tuple[np.ndarray, list, float]:
    sigma = np.asarray(sigma, dtype=float)
    if sigma.ndim != 2 or sigma.shape[0] != sigma.shape[1] or not np.all(np.isfinite(sigma)):
        raise ParameterError("sigma", getattr(sigma, "shape", sigma), "a finite square (d, d) matrix")
    if not np.allclose(sigma, sigma.T, atol=1e-12 * max(1.0, float(np.abs(sigma).max(initial=0)))):
        raise ParameterError("sigma", "a non-symmetric matrix", "a symmetric covariance")
    if not (isinstance(support, float) and math.isinf(support) and support > 0):
        support = require_int("support", support, 1)
    if m > MAX_WORD_LENGTH:
        raise ParameterError("matrices", f"a word with {m} factors Ŝ", f"at most {MAX_WORD_LENGTH} factors")
    mats = [np.asarray(a, dtype=float) for a in matrices]
    if any(a.shape != sigma.shape or not np.all(np.isfinite(a)) for a in mats):
        raise ParameterError("matrices", [a.shape for a in mats], f"finite matrices of shape {sigma.shape}")
    return sigma, mats, support


def _power_trace_table(sx: np.ndarray, c: np.ndarray, support, steps: int) -> dict:
    """E tr(Ŝ^a Σx Ŝ^b C) for 0 ≤ a ≤ b ≤ k (symmetric in a, b since Ŝ, Σx, C are symmetric)."""
    eye = np.eye(sx.shape[0])
    table = {}
    for a in range(steps + 1):
        for b in range(a, steps + 1):
            if a + b == 0:
                table[a, b] = float(np.trace(sx @ c))
            elif a == 0:  # tr(Σx Ŝ^b C) = tr(Ŝ^b C Σx)
                table[a, b] = word_trace_moment(sx, [eye] * (b - 1) + [c @ sx], support)
            else:
                table[a, b] = word_trace_moment(sx, [eye] * (a - 1) + [sx] + [eye] * (b - 1) + [c], support)
    return table
