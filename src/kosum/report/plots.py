"""The report's figures (PNG), drawn with matplotlib's object API (Agg; no pyplot, no display).

Each function draws one figure for all comparisons and returns its path, or None when there is
nothing to draw (e.g. the rank plot when LoRA's rank does not vary). ROUGE is shown ×100;
error bars are the standard deviation over seeds.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from kosum.io import atomic_open
from kosum.report.aggregate import Comparison, Config
from kosum.report.labels import config_label
from kosum.run_folder import METRICS

VAL_ROUGE_COLUMN = "val/rougeL"
ROUGE_NAMES = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L"}
RANK = "peft.r"
DPI = 120


def _method_colors(comparisons: Sequence[Comparison]) -> dict[str, str]:
    methods = sorted({config.method for comparison in comparisons for config in comparison.configs})
    return {method: f"C{index % 10}" for index, method in enumerate(methods)}


def _error(spread: float) -> float:
    """An error bar (a std or one side of an interval) ×100; none where it is undefined (one
    seed gives no spread)."""
    return 0.0 if math.isnan(spread) else 100 * spread


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, dpi=DPI, format="png")
    return path


def _qualified(comparisons: Sequence[Comparison], comparison: Comparison, label: str) -> str:
    """A configuration's label, prefixed by its comparison when there are several."""
    return f"{comparison.title}: {label}" if len(comparisons) > 1 else label


def rouge_vs_params(comparisons: Sequence[Comparison], path: Path) -> Path | None:
    """Mean test ROUGE-L against trainable parameters (log x), one colour per method, with the
    95% t-interval over seeds as error bars and the Pareto front (no other configuration has
    as few parameters or fewer and a higher mean) as a line: the methods' trade-off when
    configurations differ in budget (`trainable_budget`, `peft.r`, ...)."""
    points = [
        (comparison, config)
        for comparison in comparisons
        for config in comparison.configs
        if config.metric("rougeL").n and config.cost("trainable_params").mean > 0
    ]
    if not points:
        return None
    colors = _method_colors(comparisons)
    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    labelled: set[str] = set()
    for _, config in points:
        rouge = config.metric("rougeL")
        params = config.cost("trainable_params").mean
        axes.errorbar(
            params,
            100 * rouge.mean,
            yerr=[[_error(rouge.mean - rouge.ci_low)], [_error(rouge.ci_high - rouge.mean)]],
            fmt="o",
            capsize=3,
            color=colors[config.method],
            label=None if config.method in labelled else config.method,
        )
        labelled.add(config.method)
    front = pareto_front(
        [
            (config.cost("trainable_params").mean, config.metric("rougeL").mean)
            for _, config in points
        ]
    )
    for comparison, config in points:  # the front's configurations are named; the table has all
        point = (config.cost("trainable_params").mean, config.metric("rougeL").mean)
        if point in front:
            axes.annotate(
                _qualified(comparisons, comparison, config.label),
                (point[0], 100 * point[1]),
                textcoords="offset points",
                xytext=(-6, 6),
                ha="right",
                fontsize=7,
            )
    if len(front) > 1:
        axes.plot(
            [params for params, _ in front],
            [100 * rouge for _, rouge in front],
            color="0.4",
            linestyle="--",
            linewidth=1,
            label="Pareto front",
        )
    axes.set_xscale("log")
    axes.set_xlabel("trainable parameters")
    axes.set_ylabel("test ROUGE-L (×100)")
    axes.set_title("ROUGE-L vs trainable parameters (mean, 95% CI over seeds)")
    axes.legend(title="method")
    axes.grid(True, alpha=0.3)
    return _save(figure, path)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (cost, score) points no other point beats: none has a cost as low or lower and a
    higher score. Sorted by cost."""
    front: list[tuple[float, float]] = []
    for cost, score in sorted(points, key=lambda point: (point[0], -point[1])):
        if not front or score > front[-1][1]:
            front.append((cost, score))
    return front


def rouge_vs_rank(comparisons: Sequence[Comparison], path: Path) -> Path | None:
    """ROUGE-1/2/L against LoRA's rank; one line per setting of everything else."""
    series: dict[str, list[Config]] = {}
    for comparison in comparisons:
        for config in comparison.configs:
            if config.setting(RANK) is None or not config.metric("rougeL").n:
                continue
            others = config_label(
                [("method", config.method), *((k, v) for k, v in config.settings if k != RANK)]
            )
            series.setdefault(_qualified(comparisons, comparison, others), []).append(config)
    ranks = {config.setting(RANK) for configs in series.values() for config in configs}
    if len(ranks) < 2:
        return None
    figure = Figure(figsize=(11, 3.8))
    for index, (metric, name) in enumerate(ROUGE_NAMES.items()):
        axes = figure.add_subplot(1, len(ROUGE_NAMES), index + 1)
        for label, configs in series.items():
            configs = sorted(configs, key=lambda config: config.setting(RANK))
            summaries = [config.metric(metric) for config in configs]
            axes.errorbar(
                [config.setting(RANK) for config in configs],
                [100 * summary.mean for summary in summaries],
                yerr=[_error(summary.std) for summary in summaries],
                marker="o",
                capsize=3,
                label=label,
            )
        axes.set_xscale("log", base=2)
        axes.set_xticks(sorted(ranks), labels=[str(rank) for rank in sorted(ranks)])
        axes.set_xlabel("LoRA rank r")
        axes.set_ylabel(f"test {name} (×100)")
        axes.grid(True, alpha=0.3)
    figure.axes[0].legend(fontsize=7)
    figure.suptitle("ROUGE vs LoRA rank (mean ± std over seeds)")
    return _save(figure, path)


def _category_bars(axes: Axes, comparison: Comparison) -> None:
    configs = [config for config in comparison.configs if config.category_scores]
    categories = sorted({category for config in configs for category in config.category_scores})
    width = 0.8 / len(configs)
    for index, config in enumerate(configs):
        axes.bar(
            [position + index * width for position in range(len(categories))],
            [100 * config.category_scores.get(category, math.nan) for category in categories],
            width=width,
            label=config.label,
        )
    axes.set_xticks(
        [position + 0.4 - width / 2 for position in range(len(categories))], labels=categories
    )
    axes.set_ylabel("test ROUGE-L (×100)")
    axes.set_title(comparison.title, fontsize=9)
    axes.legend(fontsize=7)
    axes.grid(True, axis="y", alpha=0.3)


def per_category(comparisons: Sequence[Comparison], path: Path) -> Path | None:
    """Test ROUGE-L by category (seed-averaged), grouped bars per configuration; one panel per
    comparison."""
    drawn = [
        comparison
        for comparison in comparisons
        if any(config.category_scores for config in comparison.configs)
    ]
    if not drawn:
        return None
    figure = Figure(figsize=(9, 3.6 * len(drawn)))
    for index, comparison in enumerate(drawn):
        _category_bars(figure.add_subplot(len(drawn), 1, index + 1), comparison)
    figure.suptitle("Per-category test ROUGE-L")
    return _save(figure, path)


def category_matrix(comparisons: Sequence[Comparison], path: Path) -> Path | None:
    """Configuration x test category heat map of seed-averaged test ROUGE-L, one panel per
    comparison with two configurations or more: for a sweep over training categories on one
    test set (`data.test_categories`), the train-subset x test-category matrix."""
    drawn = [
        comparison
        for comparison in comparisons
        if sum(bool(config.category_scores) for config in comparison.configs) > 1
    ]
    if not drawn:
        return None
    figure = Figure(figsize=(9, 0.6 + sum(0.45 * len(c.configs) + 1.2 for c in drawn)))
    for index, comparison in enumerate(drawn):
        axes = figure.add_subplot(len(drawn), 1, index + 1)
        configs = [config for config in comparison.configs if config.category_scores]
        categories = sorted({c for config in configs for c in config.category_scores})
        values = [
            [100 * config.category_scores.get(category, math.nan) for category in categories]
            for config in configs
        ]
        image = axes.imshow(values, aspect="auto", cmap="viridis")
        for row, line in enumerate(values):
            for column, value in enumerate(line):
                axes.text(column, row, f"{value:.1f}", ha="center", va="center", fontsize=7)
        axes.set_xticks(range(len(categories)), labels=categories, rotation=30, fontsize=8)
        axes.set_yticks(range(len(configs)), labels=[c.label for c in configs], fontsize=8)
        axes.set_title(comparison.title, fontsize=9)
        figure.colorbar(image, ax=axes, label="test ROUGE-L (×100)")
    figure.suptitle("Test ROUGE-L by configuration and test category")
    return _save(figure, path)


def validation_curve(run_dir: Path) -> list[tuple[int, float]]:
    """(step, val/rougeL) rows of a run's Lightning metrics.csv ([] without one)."""
    path = run_dir / METRICS
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            (int(float(row["step"])), float(row[VAL_ROUGE_COLUMN]))
            for row in csv.DictReader(handle)
            if row.get(VAL_ROUGE_COLUMN)
        ]


def learning_curves(comparisons: Sequence[Comparison], path: Path) -> Path | None:
    """Validation ROUGE-L over training steps, every run; one colour per configuration."""
    figure = Figure(figsize=(8, 4.5))
    axes = figure.add_subplot()
    drawn = 0
    for comparison in comparisons:
        for config in comparison.configs:
            color = f"C{drawn % 10}"
            curves = [validation_curve(run.path) for run in config.runs]
            label = _qualified(comparisons, comparison, config.label)
            for curve in filter(None, curves):
                steps, values = zip(*curve, strict=True)
                axes.plot(
                    steps,
                    [100 * value for value in values],
                    marker="o",
                    color=color,
                    alpha=0.7,
                    label=label,
                )
                label = None  # one legend entry per configuration
            drawn += any(curves)
    if not drawn:
        return None
    axes.set_xlabel("training step")
    axes.set_ylabel("validation ROUGE-L (×100)")
    axes.set_title("Validation ROUGE-L learning curves (one line per run)")
    axes.legend(fontsize=7)
    axes.grid(True, alpha=0.3)
    return _save(figure, path)
