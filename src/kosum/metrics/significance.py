"""Confidence intervals and paired significance tests over per-example score arrays.

Pure functions of numbers (e.g. per-example ROUGE F1 from `rouge_per_example`), seeded with a
`numpy.random.default_rng(seed)`, so a report is reproducible. Both paired tests take two systems'
scores on the same references, in the same order, and are two-sided; their p-values are
(1 + #resamples at least as extreme) / (1 + n_resamples), so never 0 and 1.0 for identical systems.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# Resampled index matrices are drawn in blocks of about this many entries to bound memory.
_BLOCK_ENTRIES = 1 << 20


def _as_scores(scores: Sequence[float] | np.ndarray, name: str = "scores") -> np.ndarray:
    values = np.asarray(scores, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers, got {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return values


def _as_pair(
    scores_a: Sequence[float] | np.ndarray, scores_b: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_scores(scores_a, "scores_a"), _as_scores(scores_b, "scores_b")
    if a.shape != b.shape:
        raise ValueError(
            f"paired tests need scores of the same examples: got {a.size} and {b.size} scores"
        )
    return a, b


def _check_resamples(n_resamples: int) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")


def _in_blocks(n_resamples: int, n: int, draw: Callable[[int], np.ndarray]) -> np.ndarray:
    """Concatenate `draw(rows)` over blocks of rows summing to `n_resamples`."""
    block = max(1, _BLOCK_ENTRIES // n)
    return np.concatenate(
        [draw(min(block, n_resamples - start)) for start in range(0, n_resamples, block)]
    )


def _bootstrap_means(values: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = values.size
    return _in_blocks(
        n_resamples, n, lambda rows: values[rng.integers(0, n, size=(rows, n))].mean(axis=1)
    )


def _percentile_interval(means: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_ci(
    scores: Sequence[float] | np.ndarray,
    *,
    n_resamples: int,
    seed: int,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of `scores`."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    _check_resamples(n_resamples)
    values = _as_scores(scores)
    return _percentile_interval(_bootstrap_means(values, n_resamples, seed), confidence)


def _p_value(extreme: int, n_resamples: int) -> float:
    return (1 + extreme) / (1 + n_resamples)


def paired_bootstrap(
    scores_a: Sequence[float] | np.ndarray,
    scores_b: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired bootstrap test of mean(a) - mean(b) (Koehn 2004; Berg-Kirkpatrick et al. 2012).

    Examples are resampled with replacement; the p-value counts resampled mean differences at
    least |observed| away from the observed one (the bootstrap distribution shifted to the null).
    Returns mean_a, mean_b, mean_diff, ci95 (percentile CI of the difference), p_value, n,
    n_resamples, method.
    """
    _check_resamples(n_resamples)
    a, b = _as_pair(scores_a, scores_b)
    diff = a - b
    observed = float(diff.mean())
    means = _bootstrap_means(diff, n_resamples, seed)
    extreme = int(np.count_nonzero(np.abs(means - observed) >= abs(observed)))
    return _result(
        "paired_bootstrap",
        a,
        b,
        observed,
        _percentile_interval(means, 0.95),
        _p_value(extreme, n_resamples),
        n_resamples,
    )


def paired_permutation(
    scores_a: Sequence[float] | np.ndarray,
    scores_b: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired permutation (sign-flip) test of mean(a) - mean(b).

    Under the null the two systems are exchangeable per example, so each difference's sign is
    flipped at random; the p-value counts flipped mean differences with |mean| ≥ |observed|. The
    returned ci95 is the bootstrap percentile CI of the difference (same seed), as in
    `paired_bootstrap`.
    """
    _check_resamples(n_resamples)
    a, b = _as_pair(scores_a, scores_b)
    diff = a - b
    n = diff.size
    observed = float(diff.mean())
    rng = np.random.default_rng(seed)
    flipped = _in_blocks(
        n_resamples, n, lambda rows: (rng.integers(0, 2, size=(rows, n)) * 2 - 1) @ diff / n
    )
    # The tolerance keeps sign patterns that reproduce |observed| exactly from being lost to
    # floating-point summation order.
    extreme = int(np.count_nonzero(np.abs(flipped) >= abs(observed) - 1e-12))
    ci = bootstrap_ci(diff, n_resamples=n_resamples, seed=seed)
    return _result(
        "paired_permutation", a, b, observed, ci, _p_value(extreme, n_resamples), n_resamples
    )


def _result(
    method: str,
    a: np.ndarray,
    b: np.ndarray,
    mean_diff: float,
    ci: tuple[float, float],
    p_value: float,
    n_resamples: int,
) -> dict[str, Any]:
    return {
        "method": method,
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
        "mean_diff": mean_diff,
        "ci95": [ci[0], ci[1]],
        "p_value": p_value,
        "n": int(a.size),
        "n_resamples": n_resamples,
    }
