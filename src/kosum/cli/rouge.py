"""`kosum-rouge`: Korean ROUGE of a prediction file against a reference file, matched by id.

Files are CSV (the competition's `id,summary` submission format; a reference CSV may be
`id,text,summary[,category]`) or JSONL (`id` plus `prediction`/`reference` or `summary`, optional
`category`). Bad input (missing file or column, a malformed or short row, duplicate or
unmatched ids) is reported on stderr with exit code 2, never as a traceback. The `--json`
schema is documented in docs/metrics.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kosum.data.tables import read_table
from kosum.errors import InputError, some
from kosum.metrics import ROUGE_KEYS, micro_average, score_pairs, summarize_scores

# Text columns, in order of preference: one JSONL file with both `prediction` and `reference`
# can be passed as --pred and as --ref.
_PRED_FIELDS = ("prediction", "summary")
_REF_FIELDS = ("reference", "summary")


@dataclass(frozen=True)
class _Record:
    text: str
    category: str | None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _rows(path: Path, fields: Sequence[str]) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(where, row, text field) of each row; any line that is not a complete row is an error
    (a short CSV row scored as an empty summary would lower the score silently)."""
    columns, rows = read_table(path)
    if path.suffix.lower() == ".csv":
        field = next((f for f in fields if f in columns), None)
        if "id" not in columns or field is None:
            raise InputError(
                f"{path}: CSV needs an 'id' column and one of {list(fields)}, found {columns}"
            )
    for line, row in rows:
        where = f"{path}:{line}"
        if isinstance(row, str):
            raise InputError(f"{where}: {row}")
        field = next((f for f in fields if f in row), None)
        if "id" not in row or field is None:
            raise InputError(f"{where}: needs 'id' and one of {list(fields)}")
        yield where, row, field


def read_records(path: Path, fields: Sequence[str]) -> dict[str, _Record]:
    """id -> text (from the first of `fields` present) and category, in file order."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise InputError(f"{path}: expected a .csv or .jsonl file")
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    records: dict[str, _Record] = {}
    duplicates: list[str] = []
    try:
        for where, row, field in _rows(path, fields):
            record_id = _text(row["id"]).strip()
            if not record_id:
                raise InputError(f"{where}: empty id")
            if record_id in records:
                duplicates.append(record_id)
            records[record_id] = _Record(_text(row[field]), _text(row.get("category")) or None)
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error})") from None
    if duplicates:
        raise InputError(f"{path}: {len(duplicates)} duplicate id(s): {some(duplicates)}")
    if not records:
        raise InputError(f"{path}: no records")
    return records


def match_by_id(
    predictions: dict[str, _Record], references: dict[str, _Record]
) -> tuple[list[str], list[str], list[str | None]]:
    """Predictions, references and categories in reference order; InputError on any id mismatch."""
    unpredicted = [i for i in references if i not in predictions]
    unreferenced = [i for i in predictions if i not in references]
    problems = []
    if unpredicted:
        problems.append(
            f"{len(unpredicted)} reference id(s) have no prediction: {some(unpredicted)}"
        )
    if unreferenced:
        problems.append(
            f"{len(unreferenced)} prediction id(s) have no reference: {some(unreferenced)}"
        )
    if problems:
        raise InputError("ids do not match; " + "; ".join(problems))
    ids = list(references)
    return (
        [predictions[i].text for i in ids],
        [references[i].text for i in ids],
        [references[i].category or predictions[i].category for i in ids],
    )


def evaluate_files(
    pred_path: Path, ref_path: Path, *, by_category: bool, n_resamples: int, seed: int
) -> dict[str, Any]:
    """The `--json` object: macro F1, n, ci95, macro precision/recall, micro F1, by_category."""
    predictions, references, categories = match_by_id(
        read_records(pred_path, _PRED_FIELDS), read_records(ref_path, _REF_FIELDS)
    )
    scores = score_pairs(predictions, references)
    result = summarize_scores(
        scores,
        categories=categories if by_category else None,
        n_resamples=n_resamples,
        seed=seed,
    )
    by_category_result = result.pop("by_category", None)
    n = len(scores)
    result["precision"] = {k: sum(s[k].precision for s in scores) / n for k in ROUGE_KEYS}
    result["recall"] = {k: sum(s[k].recall for s in scores) / n for k in ROUGE_KEYS}
    result["micro"] = {k: score.fmeasure for k, score in micro_average(scores).items()}
    result["n_resamples"] = n_resamples
    result["seed"] = seed
    if by_category_result is not None:
        result["by_category"] = by_category_result
    return result


def format_table(result: dict[str, Any]) -> str:
    """The human-readable report printed without --json."""
    ci = result.get("ci95")
    title = f"Korean ROUGE (Mecab morphemes), n = {result['n']}"
    if ci:
        title += f", 95% bootstrap CI over {result['n_resamples']} resamples"
    header = f"{'metric':<10} {'F1':>7} {'95% CI':>17} {'P':>7} {'R':>7} {'micro F1':>9}"
    lines = [title, header]
    for key in ROUGE_KEYS:
        interval = f"[{ci[key][0]:.4f}, {ci[key][1]:.4f}]" if ci else "-"
        lines.append(
            f"{key:<10} {result[key]:>7.4f} {interval:>17} {result['precision'][key]:>7.4f} "
            f"{result['recall'][key]:>7.4f} {result['micro'][key]:>9.4f}"
        )
    if "by_category" in result:
        lines += [
            "",
            "F1 by category",
            f"{'category':<16} {'n':>6} " + " ".join(f"{key:>9}" for key in ROUGE_KEYS),
        ]
        for category, summary in result["by_category"].items():
            lines.append(
                f"{category:<16} {summary['n']:>6} "
                + " ".join(f"{summary[key]:>9.4f}" for key in ROUGE_KEYS)
            )
    return "\n".join(lines)


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kosum-rouge",
        description="Korean ROUGE-1/2/L/Lsum F1 (Mecab morphemes, as the competition scored) of "
        "predictions against references, matched by id.",
    )
    parser.add_argument(
        "--pred", required=True, type=Path, help="predictions: CSV id,summary or JSONL"
    )
    parser.add_argument(
        "--ref",
        required=True,
        type=Path,
        help="references: CSV id,[text,]summary[,category] or JSONL",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--by-category", action="store_true", help="also score each category separately"
    )
    parser.add_argument(
        "--n-resamples",
        type=_non_negative,
        default=1000,
        help="bootstrap resamples for the 95%% CIs (0: no CIs; default 1000)",
    )
    parser.add_argument(
        "--seed", type=_non_negative, default=0, help="bootstrap seed, >= 0 (default 0)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = evaluate_files(
            args.pred,
            args.ref,
            by_category=args.by_category,
            n_resamples=args.n_resamples,
            seed=args.seed,
        )
    except InputError as error:
        print(f"kosum-rouge: error: {error}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(result, ensure_ascii=False) if args.json else format_table(result))
        sys.stdout.flush()
    except BrokenPipeError:  # `kosum-rouge ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
