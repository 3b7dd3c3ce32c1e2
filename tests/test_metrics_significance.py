"""Bootstrap CIs and paired significance tests over per-example scores."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from kosum.metrics import bootstrap_ci, compute_rouge, paired_bootstrap, paired_permutation

PairedTest = Callable[..., dict[str, Any]]
PAIRED_TESTS: list[PairedTest] = [paired_bootstrap, paired_permutation]


@pytest.fixture
def system_scores() -> np.ndarray:
    """Per-example F1 of a baseline on 300 examples (seeded)."""
    return np.random.default_rng(11).beta(4, 6, size=300)


def test_bootstrap_ci_contains_mean_and_is_reproducible(system_scores: np.ndarray) -> None:
    low, high = bootstrap_ci(system_scores, n_resamples=2000, seed=1)
    assert low < system_scores.mean() < high
    # Roughly mean ± 1.96 standard errors.
    standard_error = system_scores.std(ddof=1) / np.sqrt(system_scores.size)
    assert high - low == pytest.approx(2 * 1.96 * standard_error, rel=0.15)
    assert bootstrap_ci(system_scores, n_resamples=2000, seed=1) == (low, high)
    assert bootstrap_ci(system_scores, n_resamples=2000, seed=2) != (low, high)
    narrower = bootstrap_ci(system_scores, n_resamples=2000, seed=1, confidence=0.5)
    assert low < narrower[0] < narrower[1] < high


def test_bootstrap_ci_of_constant_scores_is_a_point() -> None:
    assert bootstrap_ci([0.25] * 10, n_resamples=100, seed=0) == (0.25, 0.25)


def test_compute_rouge_ci_is_bootstrap_ci_of_per_example_f1() -> None:
    predictions = ["서울 부산", "서울 대구", "대구 광주", "나는 빵을 먹었다"]
    references = ["서울 부산", "서울 광주", "부산 대전", "나는 밥을 먹었다"]
    result = compute_rouge(predictions, references, n_resamples=300, seed=5)
    per_example_rouge1 = [1.0, 0.5, 0.0, 6 / 7]
    assert result["ci95"]["rouge1"] == pytest.approx(
        list(bootstrap_ci(per_example_rouge1, n_resamples=300, seed=5))
    )


@pytest.mark.parametrize("test", PAIRED_TESTS)
def test_identical_systems_are_not_different(test: PairedTest, system_scores: np.ndarray) -> None:
    result = test(system_scores, system_scores.copy(), n_resamples=500, seed=0)
    assert result["mean_diff"] == 0.0
    assert result["p_value"] == 1.0
    assert result["ci95"] == [0.0, 0.0]
    assert result["n"] == 300


@pytest.mark.parametrize("test", PAIRED_TESTS)
def test_symmetric_differences_are_not_significant(
    test: PairedTest, system_scores: np.ndarray
) -> None:
    # System b is better on half the examples and worse on the other half by the same amounts.
    noise = np.random.default_rng(3).uniform(0.0, 0.1, size=150)
    better = system_scores + np.concatenate([noise, -noise])
    result = test(better, system_scores, n_resamples=1000, seed=0)
    assert result["mean_diff"] == pytest.approx(0.0, abs=1e-12)
    assert result["p_value"] > 0.5
    low, high = result["ci95"]
    assert low < 0.0 < high


@pytest.mark.parametrize("test", PAIRED_TESTS)
def test_clearly_better_system_is_significant(test: PairedTest, system_scores: np.ndarray) -> None:
    # +0.03 on average with per-example noise of 0.05: about 10 standard errors.
    rng = np.random.default_rng(4)
    better = system_scores + 0.03 + rng.normal(0.0, 0.05, size=system_scores.size)
    result = test(better, system_scores, n_resamples=1000, seed=0)
    assert result["p_value"] < 0.05
    assert result["p_value"] == pytest.approx(1 / 1001)  # no resample as extreme
    assert result["mean_a"] - result["mean_b"] == pytest.approx(result["mean_diff"])
    low, high = result["ci95"]
    assert 0.0 < low < result["mean_diff"] < high
    # Swapping the systems flips the difference but not the evidence.
    swapped = test(system_scores, better, n_resamples=1000, seed=0)
    assert swapped["mean_diff"] == pytest.approx(-result["mean_diff"])
    assert swapped["p_value"] == result["p_value"]


@pytest.mark.parametrize("test", PAIRED_TESTS)
def test_seeded_results_are_reproducible(test: PairedTest, system_scores: np.ndarray) -> None:
    other = np.random.default_rng(9).permutation(system_scores)
    first = test(other, system_scores, n_resamples=300, seed=42)
    assert test(other, system_scores, n_resamples=300, seed=42) == first
    assert test(other, system_scores, n_resamples=300, seed=43)["ci95"] != first["ci95"]


def test_permutation_p_value_matches_exact_enumeration() -> None:
    diff = np.array([0.30, 0.12, -0.05, 0.20, 0.08, -0.10, 0.15, 0.02])
    observed = abs(diff.mean())
    flips = np.array(list(itertools.product([-1, 1], repeat=diff.size)))
    exact = np.mean(np.abs(flips @ diff / diff.size) >= observed - 1e-12)
    result = paired_permutation(diff, np.zeros_like(diff), n_resamples=20000, seed=0)
    assert result["p_value"] == pytest.approx(exact, abs=0.01)


@pytest.mark.parametrize("test", PAIRED_TESTS)
def test_invalid_inputs_raise(test: PairedTest) -> None:
    with pytest.raises(ValueError, match="same examples"):
        test([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="non-empty"):
        test([], [])
    with pytest.raises(ValueError, match="NaN"):
        test([0.1, float("nan")], [0.1, 0.2])
    with pytest.raises(ValueError, match="n_resamples"):
        test([0.1], [0.2], n_resamples=0)


def test_bootstrap_ci_rejects_bad_confidence() -> None:
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([0.1, 0.2], n_resamples=10, seed=0, confidence=95)
