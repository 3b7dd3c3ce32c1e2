"""`build_report`: sweep directories in, report files out.

Writes into OUT: results.csv (one row per run), the figures (PNG), report.md and report.html:
per comparison a table of configurations (mean ± std over seeds and 95% t-interval of ROUGE-1/
2/L, validation ROUGE-L, trainable parameters, wall time, time per training step, training
tokens per second, peak memory), the best configuration, paired
significance against the reference method and per-category ROUGE-L; then failed runs with
their errors. Reads only local files (see kosum.report.collect).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kosum.io import atomic_open
from kosum.report import plots
from kosum.report.aggregate import (
    CONFIDENCE,
    Comparison,
    Config,
    PairedTest,
    Summary,
    compare,
    paired_tests,
    placement,
    reference_method,
    varying_settings,
)
from kosum.report.collect import Run, load_runs, write_runs_csv
from kosum.report.labels import short_name
from kosum.report.render import (
    Block,
    BulletList,
    Heading,
    Image,
    Paragraph,
    Table,
    to_html,
    to_markdown,
)

log = logging.getLogger(__name__)

TITLE = "kosum sweep report"
SIGNIFICANCE_LEVEL = 0.05
MAX_ERROR_CHARS = 300
FIGURES: tuple[tuple[str, Callable[[Sequence[Comparison], Path], Path | None], str], ...] = (
    ("rougeL_vs_params.png", plots.rouge_vs_params, "Test ROUGE-L vs trainable parameters"),
    ("rouge_vs_rank.png", plots.rouge_vs_rank, "Test ROUGE vs LoRA rank"),
    ("per_category.png", plots.per_category, "Per-category test ROUGE-L"),
    ("category_matrix.png", plots.category_matrix, "Test ROUGE-L by configuration and category"),
    ("val_rougeL_curves.png", plots.learning_curves, "Validation ROUGE-L learning curves"),
)


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    csv: Path
    figures: list[Path]


def _rouge_cell(summary: Summary, seeds: int | None = None) -> str:
    """mean ± std [interval]; `(n=k)` when only k of the configuration's `seeds` runs have it."""
    if not summary.n:
        return "—"
    partial = "" if seeds is None or summary.n >= seeds else f" (n={summary.n})"
    if summary.n < 2:
        return f"{100 * summary.mean:.2f}{partial}"
    return (
        f"{100 * summary.mean:.2f} ± {100 * summary.std:.2f} "
        f"[{100 * summary.ci_low:.2f}, {100 * summary.ci_high:.2f}]{partial}"
    )


def _params_cell(config: Config) -> str:
    params, fraction = config.cost("trainable_params"), config.cost("trainable_fraction")
    if not params.n:
        return "—"
    share = "" if not fraction.n else f" ({100 * fraction.mean:.3g}%)"
    return f"{params.mean:,.0f}{share}"


def _time_cell(summary: Summary) -> str:
    if not summary.n:
        return "—"
    scale, unit = (60.0, "min") if summary.mean >= 600 else (1.0, "s")
    spread = "" if math.isnan(summary.std) else f" ± {summary.std / scale:.1f}"
    return f"{summary.mean / scale:.1f}{spread} {unit}"


def _number_cell(summary: Summary, scale: float, unit: str) -> str:
    """Mean over seeds (× `scale`), with its std when there are several."""
    if not summary.n:
        return "—"
    spread = "" if math.isnan(summary.std) else f" ± {scale * summary.std:,.0f}"
    return f"{scale * summary.mean:,.0f}{spread} {unit}".rstrip()


def _configs_table(comparison: Comparison) -> Table:
    # "val ROUGE-L at start" when a run validated before training (validate_before_training).
    rouge_keys = ["rouge1", "rouge2", "rougeL", "val_rougeL"]
    if any(config.metric("start_val_rougeL").n for config in comparison.configs):
        rouge_keys.append("start_val_rougeL")
    rows = [
        [
            config.label,
            ", ".join(str(seed) for seed in config.seeds),
            *(_rouge_cell(config.metric(key), len(config.runs)) for key in rouge_keys),
            _params_cell(config),
            _time_cell(config.cost("wall_time_s")),
            _number_cell(config.cost("time_per_step_s"), 1000, "ms"),
            _number_cell(config.cost("tokens_per_s"), 1, ""),
            _number_cell(config.cost("peak_memory_mb"), 1, "MiB"),
        ]
        for config in comparison.configs
    ]
    return Table(
        [
            "configuration",
            "seeds",
            "ROUGE-1",
            "ROUGE-2",
            "ROUGE-L",
            "val ROUGE-L",
            *(["val ROUGE-L at start"] if "start_val_rougeL" in rouge_keys else []),
            "trainable params",
            "wall time",
            "time / step",
            "tokens / s",
            "peak memory",
        ],
        rows,
    )


def _significance_blocks(tests: list[PairedTest], reference: str, n_resamples: int) -> list[Block]:
    heading = Heading(f"Paired significance against {reference}", 3)
    if not tests:
        return [heading, Paragraph(f"No completed `{reference}` configuration to compare with.")]
    rows = []
    for test in tests:
        seeds = (
            f"{test.config.seeds_with_predictions}/{len(test.config.runs)} vs "
            f"{test.reference.seeds_with_predictions}/{len(test.reference.runs)}"
        )
        if test.result is None:
            rows.append([test.config.label, "—", "—", "—", "0", seeds, test.note or ""])
            continue
        low, high = test.result["ci95"]
        p_value = test.result["p_value"]
        rows.append(
            [
                test.config.label,
                f"{100 * test.result['mean_diff']:+.2f}",
                f"[{100 * low:+.2f}, {100 * high:+.2f}]",
                f"{p_value:.3g}",
                str(test.result["n"]),
                seeds,
                "yes" if p_value < SIGNIFICANCE_LEVEL else "no",
            ]
        )
    return [
        heading,
        Paragraph(
            f"Reference: **{tests[0].reference.label}**. Δ = configuration − reference, in test "
            f"ROUGE-L ×100 over the common test examples of per-example ROUGE-L averaged over "
            f"the seeds with predictions (the `seeds` column: with predictions / runs); p from "
            f"a paired permutation (sign-flip) test, 95% CI of Δ from the paired bootstrap "
            f"({n_resamples} resamples each). The test covers the sampling of test examples, "
            "not training variance between seeds: with one seed a small p says nothing about "
            "how another seed would do. The reference is chosen by its test ROUGE-L, which "
            "favours it against the other configurations of its own method."
        ),
        Table(
            [
                "configuration",
                "Δ ROUGE-L",
                "95% CI of Δ",
                "p-value",
                "examples",
                "seeds",
                f"p < {SIGNIFICANCE_LEVEL}",
            ],
            rows,
        ),
    ]


def _category_blocks(comparison: Comparison) -> list[Block]:
    configs = [config for config in comparison.configs if config.category_scores]
    if not configs:
        return []
    categories = sorted({category for config in configs for category in config.category_scores})
    rows = [
        [
            config.label,
            *(
                f"{100 * config.category_scores[category]:.2f}"
                if category in config.category_scores
                else "—"
                for category in categories
            ),
        ]
        for config in configs
    ]
    return [
        Heading("Per-category test ROUGE-L", 3),
        Paragraph("Mean per-example ROUGE-L ×100 by category, averaged over seeds."),
        Table(["configuration", *categories], rows),
    ]


def _comparison_blocks(
    comparison: Comparison, reference: str | None, n_resamples: int, seed: int
) -> list[Block]:
    blocks: list[Block] = [Heading(f"Comparison: {comparison.title}"), _configs_table(comparison)]
    repeated = [run for config in comparison.configs for run in config.repeated]
    if repeated:
        blocks.append(
            Paragraph(
                "**Left out**, a seed already counted (the newest results.json is kept): "
                + ", ".join(f"`{run.path}` (seed {run.seed})" for run in repeated)
                + "."
            )
        )
    best = comparison.best()
    if best is not None:
        blocks.append(
            Paragraph(
                f"**Best configuration** (highest mean test ROUGE-L): **{best.label}**, "
                f"{_rouge_cell(best.metric('rougeL'))}."
            )
        )
    if reference is not None and len(comparison.configs) > 1:
        tests = paired_tests(comparison, reference, n_resamples=n_resamples, seed=seed)
        blocks += _significance_blocks(tests, reference, n_resamples)
    return blocks + _category_blocks(comparison)


def _status_note(status: str) -> str:
    if status == "running":  # written when training starts, replaced when it ends
        return "unfinished: still running, or killed (resume=auto in its folder continues it)"
    return status


def _failed_blocks(runs: Sequence[Run], root: Path) -> list[Block]:
    failed = [run for run in runs if not run.completed]
    blocks: list[Block] = [Heading("Failed runs")]
    if not failed:
        return [*blocks, Paragraph("None.")]
    rows = [
        [
            os.path.relpath(run.path, root),
            run.method or "—",
            "—" if run.seed is None else str(run.seed),
            " ".join(run.overrides),
            (str(run.error or _status_note(run.status)).splitlines() or [""])[0][:MAX_ERROR_CHARS],
        ]
        for run in failed
    ]
    return [*blocks, Table(["run", "method", "seed", "overrides", "error"], rows)]


def _overview(
    runs: Sequence[Run], sweep_dirs: Sequence[Path], reference: str | None
) -> list[Block]:
    completed = sum(run.completed for run in runs)
    varying = [short_name(key) for key in varying_settings(runs)]
    methods = sorted({run.method for run in runs if run.completed and run.method})
    return [
        Heading(TITLE, 1),
        Paragraph(
            f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from "
            + ", ".join(f"`{path}`" for path in sweep_dirs)
            + f": {len(runs)} runs, {completed} completed, {len(runs) - completed} failed or"
            " unfinished."
        ),
        BulletList(
            [
                f"Methods: {', '.join(methods) or '—'}; reference for significance: "
                f"{reference or '—'}.",
                f"Settings that vary besides method and seed: {', '.join(varying) or 'none'}.",
                "ROUGE: F1 ×100 on the test split (Mecab morphemes, kosum.metrics), "
                f"mean ± sample std over seeds [{100 * CONFIDENCE:.0f}% Student-t interval of the "
                "mean over seeds]; val ROUGE-L is the best validation ROUGE-L of each run.",
                "Paired significance: paired permutation (sign-flip) test over test examples "
                "(kosum.metrics), no multiple-comparison correction.",
            ]
        ),
    ]


def _draw_figures(comparisons: Sequence[Comparison], out: Path) -> list[tuple[Path, str]]:
    drawn = []
    for name, draw, caption in FIGURES:
        path = draw(comparisons, out / name)
        if path is not None:
            drawn.append((path, caption))
    return drawn


def build_report(
    sweep_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    reference: str | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> ReportFiles:
    """Collect the runs under `sweep_dirs` and write the report files into `out`."""
    sweep_dirs = [Path(path).resolve() for path in sweep_dirs]
    runs = load_runs(sweep_dirs)
    if not runs:
        raise FileNotFoundError(f"no results.json found under {', '.join(map(str, sweep_dirs))}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    comparisons = compare(runs)
    csv_path = write_runs_csv(runs, out / "results.csv", placement(comparisons))
    reference = reference_method(
        (config.method for comparison in comparisons for config in comparison.configs), reference
    )
    log.info("%d comparisons; reference method %s", len(comparisons), reference)
    figures = _draw_figures(comparisons, out)

    blocks = _overview(runs, sweep_dirs, reference)
    for comparison in comparisons:
        blocks += _comparison_blocks(comparison, reference, n_resamples, seed)
    if figures:
        blocks.append(Heading("Figures"))
        blocks += [Image(path.name, caption) for path, caption in figures]
    blocks += _failed_blocks(runs, Path(os.path.commonpath(sweep_dirs)))
    blocks += [
        Heading("Files"),
        Paragraph(f"`{csv_path.name}`: one row per run (failed ones too), for pandas."),
    ]

    markdown, html = out / "report.md", out / "report.html"
    with atomic_open(markdown) as handle:
        handle.write(to_markdown(blocks))
    with atomic_open(html) as handle:
        handle.write(to_html(blocks, TITLE))
    return ReportFiles(markdown, html, csv_path, [path for path, _ in figures])
