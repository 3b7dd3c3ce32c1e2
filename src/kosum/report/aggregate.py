"""Group runs into configurations and comparisons; statistics over seeds; paired significance.

- A *configuration* is a set of completed runs that differ only in their seed.
- A *comparison* holds the configurations evaluated on the same test set: runs are split into
  comparisons by the settings that vary and change the data (`data`, `data.*`, `experiment`);
  within one, configurations differ in method and in the other varying settings (rank, prompt,
  learning rate...).
- Over seeds: mean, sample standard deviation (ddof=1) and a 95% Student-t interval of the mean,
  mean ± t(0.975, n-1)·std/√n (none for a single seed).
- Paired significance against a reference configuration (the best one of the reference method
  in the comparison): per-example test ROUGE-L from predictions.jsonl (kosum.metrics, Mecab
  morphemes), averaged over each configuration's seeds, matched by example id, tested with the
  paired permutation (sign-flip) test (`kosum.metrics.paired_permutation`, two-sided; its 95%
  interval of the difference is the paired bootstrap's). Not the paired bootstrap's p-value:
  with few examples, or differences of one sign, no bootstrap resample lands |observed| away
  from the observed mean and it reports the smallest p possible (one example: p ≈ 0.001). No
  multiple-comparison correction is applied.
- One run per (configuration, seed): a seed found twice (a sweep run again, a copied folder)
  would pass for replication; the newest run is kept and the others are reported.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from kosum.io import parse_jsonl
from kosum.metrics import paired_permutation, rouge_per_example
from kosum.report.collect import Run, setting_keys
from kosum.report.labels import config_label, format_value
from kosum.run_folder import PREDICTIONS, RESULTS

log = logging.getLogger(__name__)

CONFIDENCE = 0.95
PRIMARY_METRIC = "rougeL"

Setting = tuple[str, Any]


@dataclass(frozen=True)
class Summary:
    """Mean over seeds with the sample standard deviation and a t-interval (nan for n < 2)."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


def summarize(values: Iterable[float], confidence: float = CONFIDENCE) -> Summary:
    data = np.asarray([value for value in values if math.isfinite(value)], dtype=float)
    n = data.size
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(data.mean())
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    std = float(data.std(ddof=1))
    half_width = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half_width, mean + half_width)


# `data.*` keys that change how examples are batched, truncated or loaded, not which test
# examples and reference summaries there are: configurations differing in them are compared.
SAME_TEST_SET_KEYS = frozenset(
    f"data.{key}"
    for key in (
        "batch_size",
        "eval_batch_size",
        "num_workers",
        "group_by_length",
        "pad_to_max_length",
        "max_source_length",
        "max_target_length",
    )
)


def is_data_setting(key: str, runs: Sequence[Run] = ()) -> bool:
    """Settings that change the test set: configurations differing in them are not paired.
    The training categories do not when every run fixed its test categories apart
    (`data.test_categories`): then they are compared, on the same test documents."""
    if key in SAME_TEST_SET_KEYS:
        return False
    if key == "data.categories" and runs:
        return any(run.settings.get("data.test_categories") is None for run in runs)
    return key in {"data", "experiment"} or key.startswith("data.")


def _varies(runs: Sequence[Run], key: str) -> bool:
    if key.startswith("peft."):  # a method's own setting (LoRA's r): compare within each method
        values: dict[str | None, set[Any]] = defaultdict(set)
        for run in runs:
            values[run.method].add(run.settings.get(key))
        return any(len(method_values) > 1 for method_values in values.values())
    return len({run.settings.get(key) for run in runs}) > 1


def varying_settings(runs: Sequence[Run]) -> list[str]:
    """Setting keys whose value differs between completed runs (seed and method aside; a
    `peft.*` setting only when it differs between runs of the same method)."""
    completed = [run for run in runs if run.completed]
    return [key for key in setting_keys(completed) if _varies(completed, key)]


def _sort_value(value: Any) -> tuple[int, Any]:
    if value is None:
        return (2, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, format_value(value))


def _settings_sort_key(settings: tuple[Setting, ...]) -> tuple[tuple[int, Any], ...]:
    return tuple(_sort_value(value) for _, value in settings)


def _is_prediction(row: dict[str, Any]) -> bool:
    return all(isinstance(row.get(key), str) for key in ("prediction", "reference")) and (
        row.get("id") is not None
    )


def _example_scores(run_dir: Path) -> dict[str, tuple[float, str | None]]:
    """Per-example test ROUGE-L F1 and category of one run, by example id ({} without
    predictions)."""
    path = run_dir / PREDICTIONS
    if not path.exists():
        return {}
    rows = []
    for line, row in parse_jsonl(path.read_text(encoding="utf-8", errors="replace")):
        if isinstance(row, str) or not _is_prediction(row):
            reason = row if isinstance(row, str) else "needs string id, prediction and reference"
            log.warning("%s:%d: %s; row left out of the per-example scores", path, line, reason)
            continue
        rows.append(row)
    scores = rouge_per_example(
        [row["prediction"] for row in rows], [row["reference"] for row in rows]
    )
    return {
        str(row["id"]): (score[PRIMARY_METRIC], row.get("category"))
        for row, score in zip(rows, scores, strict=True)
    }


@dataclass
class Config:
    """Completed runs of one configuration (one per seed)."""

    method: str
    settings: tuple[Setting, ...]
    runs: list[Run] = field(default_factory=list)
    # Runs of a seed already in `runs` (older results.json), left out of every statistic.
    repeated: list[Run] = field(default_factory=list)

    @property
    def label(self) -> str:
        return config_label([("method", self.method), *self.settings])

    @property
    def seeds(self) -> list[int | None]:
        return [run.seed for run in self.runs]

    def setting(self, key: str) -> Any:
        return dict(self.settings).get(key)

    def metric(self, key: str) -> Summary:
        return summarize(run.metrics[key] for run in self.runs if key in run.metrics)

    def cost(self, key: str) -> Summary:
        return summarize(run.costs[key] for run in self.runs if key in run.costs)

    @cached_property
    def _per_run_examples(self) -> list[dict[str, tuple[float, str | None]]]:
        return [scores for scores in map(_example_scores, (r.path for r in self.runs)) if scores]

    @property
    def seeds_with_predictions(self) -> int:
        """How many of the runs have test predictions (the paired test averages over these)."""
        return len(self._per_run_examples)

    @cached_property
    def example_scores(self) -> dict[str, float]:
        """Per-example test ROUGE-L averaged over seeds, for the ids every seed predicted."""
        per_run = self._per_run_examples
        if not per_run:
            return {}
        common = set.intersection(*(set(scores) for scores in per_run))
        return {
            example: float(np.mean([scores[example][0] for scores in per_run]))
            for example in per_run[0]
            if example in common
        }

    @cached_property
    def category_scores(self) -> dict[str, float]:
        """Mean per-example test ROUGE-L by category (of `example_scores`); {} without
        categories."""
        if not self._per_run_examples:
            return {}
        categories = {example: item[1] for example, item in self._per_run_examples[0].items()}
        by_category: dict[str, list[float]] = defaultdict(list)
        for example, score in self.example_scores.items():
            if categories.get(example) is not None:
                by_category[str(categories[example])].append(score)
        return {
            category: float(np.mean(values)) for category, values in sorted(by_category.items())
        }


@dataclass(frozen=True)
class PairedTest:
    """`config` against `reference` on their common test examples (`result` from
    `paired_permutation`, a = config, b = reference), or why there is none (`note`)."""

    config: Config
    reference: Config
    result: dict[str, Any] | None = None
    note: str | None = None


@dataclass
class Comparison:
    """Configurations evaluated on the same data; `data_settings` are what they share."""

    data_settings: tuple[Setting, ...]
    configs: list[Config]

    @property
    def title(self) -> str:
        return config_label(self.data_settings) or "all runs"

    @property
    def methods(self) -> list[str]:
        return sorted({config.method for config in self.configs})

    def best(self, method: str | None = None, metric: str = PRIMARY_METRIC) -> Config | None:
        """The configuration (of `method`, if given) with the highest mean `metric`."""
        candidates = [
            config
            for config in self.configs
            if (method is None or config.method == method) and config.metric(metric).n
        ]
        return max(candidates, key=lambda config: config.metric(metric).mean, default=None)


def compare(runs: Sequence[Run]) -> list[Comparison]:
    """Completed runs grouped into comparisons, each into configurations (sorted by method and
    settings; runs by seed)."""
    varying = varying_settings(runs)
    completed = [run for run in runs if run.completed]
    data_keys = [key for key in varying if is_data_setting(key, completed)]
    config_keys = [key for key in varying if key not in data_keys]
    grouped: dict[tuple[Setting, ...], dict[tuple[str, tuple[Setting, ...]], list[Run]]] = (
        defaultdict(lambda: defaultdict(list))
    )
    for run in runs:
        if not run.completed:
            continue
        data = tuple((key, run.settings.get(key)) for key in data_keys)
        settings = tuple((key, run.settings.get(key)) for key in config_keys)
        grouped[data][(run.method or "unknown", settings)].append(run)
    return [
        Comparison(
            data,
            [
                _config(method, settings, members)
                for (method, settings), members in sorted(
                    configs.items(), key=lambda item: (item[0][0], _settings_sort_key(item[0][1]))
                )
            ],
        )
        for data, configs in sorted(grouped.items(), key=lambda item: _settings_sort_key(item[0]))
    ]


def placement(comparisons: Iterable[Comparison]) -> dict[Path, tuple[str, str]]:
    """Each run counted in the statistics: its comparison's title and configuration's label
    (completed runs, one per seed; left-out repeats and failed runs are not counted)."""
    return {
        run.path: (comparison.title, config.label)
        for comparison in comparisons
        for config in comparison.configs
        for run in config.runs
    }


def _config(method: str, settings: tuple[Setting, ...], runs: list[Run]) -> Config:
    """The configuration of `runs`, one run per seed (the newest `results.json`): a seed run
    twice is one observation, not two (it would shrink the std and the interval)."""
    by_seed: dict[Any, list[Run]] = defaultdict(list)
    for run in runs:
        by_seed[run.seed].append(run)
    kept, repeated = [], []
    for seed, same_seed in by_seed.items():
        newest = max(same_seed, key=_results_mtime)
        kept.append(newest)
        repeated += [run for run in same_seed if run is not newest]
        if len(same_seed) > 1:
            log.warning(
                "seed %s of %s was run %d times: kept %s, left out %s",
                seed,
                config_label([("method", method), *settings]),
                len(same_seed),
                newest.path,
                ", ".join(str(run.path) for run in same_seed if run is not newest),
            )
    return Config(method, settings, sorted(kept, key=lambda run: _sort_value(run.seed)), repeated)


def _results_mtime(run: Run) -> float:
    try:
        return (run.path / RESULTS).stat().st_mtime
    except OSError:
        return -math.inf


def reference_method(methods: Iterable[str], preferred: str | None = None) -> str | None:
    """`preferred` if given, else `lora` when present, else the first method alphabetically."""
    available = sorted(set(methods))
    if preferred is not None:
        return preferred
    if "lora" in available:
        return "lora"
    return available[0] if available else None


def paired_tests(
    comparison: Comparison, method: str, *, n_resamples: int = 1000, seed: int = 0
) -> list[PairedTest]:
    """Each other configuration of `comparison` against the best configuration of `method`."""
    reference = comparison.best(method)
    if reference is None:
        return []
    tests = []
    for config in comparison.configs:
        if config is reference:
            continue
        common = [
            example for example in config.example_scores if example in reference.example_scores
        ]
        if not common:
            tests.append(PairedTest(config, reference, note="no common test predictions"))
            continue
        result = paired_permutation(
            [config.example_scores[example] for example in common],
            [reference.example_scores[example] for example in common],
            n_resamples=n_resamples,
            seed=seed,
        )
        tests.append(PairedTest(config, reference, result=result))
    return tests
