"""Throughput of Korean ROUGE (`kosum.metrics.score_pairs`) against rouge-score, on one core.

Pairs are news-length texts from the bundled competition sample: each document's lead sentence
against its summary, plus its remaining sentences paired two by two, every string distinct, so
the cold pass tokenises everything. Cold = first pass after clearing the caches (Mecab included);
warm = best of `--repeats` further passes. The baseline is rouge-score's `RougeScorer` with
`KoreanTokenizer` (rougeLsum on the same sentences joined by newlines), timed in the same run.

    .venv/bin/python scripts/bench_rouge.py [--data PATH] [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rouge_score import rouge_scorer

from kosum.metrics import ROUGE_KEYS, KoreanTokenizer, clear_cache, score_pairs, split_sentences

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "competition_sample.csv"


def load_pairs(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    predictions, references = [], []
    for row in rows:
        sentences = split_sentences(row["text"])
        predictions.append(sentences[0])
        references.append(row["summary"])
        rest = sentences[1:]
        predictions += rest[0:-1:2]
        references += rest[1::2]
    return predictions, references


def rouge_score_baseline(
    predictions: Sequence[str], references: Sequence[str]
) -> Callable[[], list[dict[str, float]]]:
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), tokenizer=KoreanTokenizer())
    pairs = [
        ("\n".join(split_sentences(r)), "\n".join(split_sentences(p)))
        for p, r in zip(predictions, references, strict=True)
    ]

    def run() -> list[dict[str, float]]:
        return [
            {key: score.fmeasure for key, score in scorer.score(r, p).items()} for r, p in pairs
        ]

    return run


def ours(
    predictions: Sequence[str], references: Sequence[str]
) -> Callable[[], list[dict[str, float]]]:
    def run() -> list[dict[str, float]]:
        return [
            {key: score.fmeasure for key, score in row.items()}
            for row in score_pairs(predictions, references)
        ]

    return run


def timed(run: Callable[[], list[dict[str, float]]]) -> tuple[float, list[dict[str, float]]]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def measure(
    run: Callable[[], list[dict[str, float]]], repeats: int
) -> tuple[float, float, list[dict[str, float]]]:
    """Seconds for a cold pass (empty caches) and the best warm pass, and the scores."""
    clear_cache()
    cold, result = timed(run)
    warm = min(timed(run)[0] for _ in range(repeats))
    return cold, warm, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="competition-format CSV")
    parser.add_argument("--repeats", type=int, default=3, help="warm passes (best is reported)")
    args = parser.parse_args()
    if not args.data.is_file():
        parser.error(f"{args.data} not found (the bundled sample lives beside the repository)")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    predictions, references = load_pairs(args.data)
    n = len(predictions)
    unique = len(set(predictions) | set(references))
    mean_chars = sum(map(len, predictions + references)) / (2 * n)
    print(f"{n} pairs, {unique} distinct strings, {mean_chars:.0f} characters on average")
    print(
        f"python {platform.python_version()}, {platform.processor() or platform.machine()}, 1 core"
    )

    ours_cold, ours_warm, ours_scores = measure(ours(predictions, references), args.repeats)
    base_cold, base_warm, base_scores = measure(
        rouge_score_baseline(predictions, references), args.repeats
    )
    gap = max(
        abs(a[key] - b[key]) for a, b in zip(ours_scores, base_scores, strict=True) for key in a
    )

    print(f"{'':<28} {'cold pairs/s':>13} {'warm pairs/s':>13}")
    print(f"{'kosum.metrics':<28} {n / ours_cold:>13,.0f} {n / ours_warm:>13,.0f}")
    print(f"{'rouge-score + KoreanTokenizer':<28} {n / base_cold:>13,.0f} {n / base_warm:>13,.0f}")
    print(f"{'speed-up':<28} {base_cold / ours_cold:>12.1f}x {base_warm / ours_warm:>12.1f}x")
    print(f"max |F1 difference| over {len(ROUGE_KEYS)} keys: {gap:.2e}")


if __name__ == "__main__":
    main()
