"""`kosum-data`: look at a corpus before training on it, and write the synthetic corpus.

    kosum-data stats PATH... [--categories a,b] [--set both] [--summary-field summary1] [--json]
    kosum-data synth OUT [--docs-per-category N] [--categories a,b] [--sets 2~3sent,20per]
                         [--seed S] [--zip]

`stats` reads AI-Hub 582 folders/zips and CSV/JSONL tables with the same loaders training uses and
prints documents per category, set and official split, length statistics and every skipped file
(`--json`: one JSON object). The filter options apply to AI-Hub paths; tables are read whole.
Missing paths and empty results exit with status 2 and a one-line error, no traceback.

Not for: tokenisation statistics (they depend on the model; see the data module's report).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kosum.data.aihub import CATEGORIES, SUMMARY_FIELDS, AihubSource, canonical_set
from kosum.data.example import LoadResult
from kosum.data.synthetic import generate_corpus
from kosum.data.tables import TABLE_SUFFIXES, TableSource
from kosum.errors import WriteFailed

_SKIPPED_SHOWN = 50


def _names(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _set_name(value: str) -> str:
    try:
        return canonical_set(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kosum-data", description="Inspect summarization corpora and write synthetic ones."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    stats = commands.add_parser("stats", help="documents, lengths and skipped files of a corpus")
    stats.add_argument("paths", nargs="+", metavar="PATH", help="folders, .zip, .csv or .jsonl")
    stats.add_argument(
        "--categories", type=_names, default=None, help="comma-separated (default: all ten)"
    )
    stats.add_argument(
        "--set", default="both", type=_set_name, help="2~3sent (or 2-3sent), 20per or both"
    )
    stats.add_argument("--summary-field", default="summary1", choices=SUMMARY_FIELDS)
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.set_defaults(func=_stats)

    synth = commands.add_parser("synth", help="write the synthetic AI-Hub-format corpus")
    synth.add_argument("out", metavar="OUT", type=Path)
    synth.add_argument("--docs-per-category", type=int, default=40)
    synth.add_argument("--categories", type=_names, default=list(CATEGORIES))
    synth.add_argument("--sets", type=_names, default=["2~3sent"])
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--validation-fraction", type=float, default=0.2)
    synth.add_argument("--zip", action="store_true", help="one zip per set, CP949 member names")
    synth.set_defaults(func=_synth)
    return parser


def _load(args: argparse.Namespace) -> tuple[LoadResult, dict[str, str | None]]:
    """Everything under the paths, and each AI-Hub example's set (tables have none)."""
    for path in args.paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"path not found: {path}")
    tables = [p for p in args.paths if Path(p).suffix.lower() in TABLE_SUFFIXES]
    roots = [p for p in args.paths if p not in tables]
    merged = LoadResult(examples=[])
    sets: dict[str, str | None] = {}
    if roots:
        source = AihubSource(
            roots, categories=args.categories, summary_field=args.summary_field, set=args.set
        )
        result = source.load()
        merged.examples += result.examples
        merged.skipped += result.skipped
        sets.update(result.sets)
    for table in tables:
        result = TableSource(table, require_summary=False).load()
        merged.examples += result.examples
        merged.skipped += result.skipped
    return merged, sets


def _lengths(values: list[int]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    array = np.asarray(values)
    return {
        "count": len(values),
        "mean": round(float(array.mean()), 1),
        "p50": round(float(np.percentile(array, 50)), 1),
        "p95": round(float(np.percentile(array, 95)), 1),
        "max": int(array.max()),
    }


def _summary(args: argparse.Namespace, result: LoadResult, sets: dict[str, str | None]) -> dict:
    examples = result.examples
    return {
        "paths": [str(p) for p in args.paths],
        "documents": len(examples),
        "skipped": len(result.skipped),
        "by_category": result.by_category(),
        "by_set": dict(sorted(Counter(sets.get(e.id) or "unknown" for e in examples).items())),
        "by_split": dict(sorted(Counter(e.split or "unknown" for e in examples).items())),
        "lengths": {
            "text_chars": _lengths([len(e.text) for e in examples]),
            "summary_chars": _lengths([len(e.summary) for e in examples if e.summary]),
        },
        "skipped_files": [{"path": s.path, "reason": s.reason} for s in result.skipped],
    }


def _print_summary(summary: dict[str, Any], result: LoadResult) -> None:
    print(f"documents: {summary['documents']}    skipped: {summary['skipped']}")
    for title, key in (("category", "by_category"), ("set", "by_set"), ("split", "by_split")):
        print(f"by {title}:")
        for name, count in summary[key].items():
            print(f"  {name:<12} {count:>8}")
    print(f"{'lengths (chars)':<16} {'count':>8} {'mean':>8} {'p50':>8} {'p95':>8} {'max':>8}")
    for name, stats in summary["lengths"].items():
        cells = [stats.get(k, "-") for k in ("count", "mean", "p50", "p95", "max")]
        print(f"  {name:<14} " + " ".join(f"{c:>8}" for c in cells))
    if result.skipped:
        print(result.skip_summary(limit=_SKIPPED_SHOWN))


def _stats(args: argparse.Namespace) -> int:
    result, sets = _load(args)
    summary = _summary(args, result, sets)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        _print_summary(summary, result)
    return 0


def _synth(args: argparse.Namespace) -> int:
    out = generate_corpus(
        args.out,
        docs_per_category=args.docs_per_category,
        categories=args.categories,
        sets=args.sets,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        zip_output=args.zip,
    )
    total = args.docs_per_category * len(args.categories) * len(args.sets)
    layout = "zip per set" if args.zip else "folders"
    print(f"wrote {total} synthetic documents ({layout}) to {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, WriteFailed) as exc:  # NoDocumentsError: a ValueError
        print(f"kosum-data: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
