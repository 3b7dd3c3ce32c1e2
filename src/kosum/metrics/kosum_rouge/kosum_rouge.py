"""`evaluate` metric wrapping `kosum.metrics`: Korean ROUGE on Mecab morphemes.

Load it from the installed package, offline:
`evaluate.load(str(kosum.metrics.evaluate_module_path()))`. evaluate copies this file into its
modules cache (under HF_HOME) and imports it from there, so it must import kosum absolutely.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate

from kosum.metrics import ROUGE_KEYS, compute_rouge, corpus_rouge, rouge_per_example

_DESCRIPTION = """\
ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum F1 for Korean, scored as the competition did: text is
lowercased, characters outside A-Za-z0-9 and Hangul syllables become spaces, and the rest is split
into Mecab (mecab-ko-dic) morphemes. rouge-score's default tokenizer drops Hangul and scores
Korean as 0. The numbers are those of `kosum.metrics.compute_rouge`.
"""

_CITATION = """\
@inproceedings{lin-2004-rouge,
    title = "{ROUGE}: A Package for Automatic Evaluation of Summaries",
    author = "Lin, Chin-Yew",
    booktitle = "Text Summarization Branches Out",
    year = "2004",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/W04-1013",
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of predicted summaries (str).
    references: list of reference summaries (str), one per prediction.
    aggregation: "macro" (default: mean of per-example F1, with "n" and the optional "ci95" and
        "by_category"), "micro" (corpus-level F1 from summed counts) or "none" (a list of
        per-example F1 for each key).
    categories: optional list of categories, one per example ("macro" only).
    n_resamples: bootstrap resamples for the 95% CIs ("macro" only; 0 = no CIs).
    seed: seed of the bootstrap.
Returns:
    dict with "rouge1", "rouge2", "rougeL", "rougeLsum" (F1 in [0, 1]).
Examples:
    >>> rouge = evaluate.load(str(kosum.metrics.evaluate_module_path()))
    >>> rouge.compute(predictions=["나는 밥을 먹었다"], references=["나는 밥을 먹었다"])["rouge1"]
    1.0
"""

_AGGREGATIONS = ("macro", "micro", "none")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class KosumRouge(evaluate.Metric):
    """Korean ROUGE (Mecab morphemes), the same numbers as `kosum.metrics.compute_rouge`."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string", id="sequence"),
                    "references": datasets.Value("string", id="sequence"),
                }
            ),
            reference_urls=["https://aclanthology.org/W04-1013"],
        )

    def _compute(
        self,
        predictions: list[str],
        references: list[str],
        aggregation: str = "macro",
        categories: list[str | None] | None = None,
        n_resamples: int = 0,
        seed: int = 0,
    ) -> dict[str, Any]:
        if aggregation not in _AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {_AGGREGATIONS}, got {aggregation!r}")
        if aggregation == "micro":
            return corpus_rouge(predictions, references)
        if aggregation == "none":
            rows = rouge_per_example(predictions, references)
            return {key: [row[key] for row in rows] for key in ROUGE_KEYS}
        return compute_rouge(
            predictions, references, categories=categories, n_resamples=n_resamples, seed=seed
        )
