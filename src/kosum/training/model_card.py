"""The README.md a run writes into its adapter (or model) folder: a model card for the Hub.

PEFT's `save_pretrained` leaves its empty template there. kosum replaces it with what a reader
of the folder needs: the base model and revision, the method and its settings, the data and
categories, the prompt, the decoding, the test ROUGE with 95% bootstrap intervals over the test
documents, the trainable parameters, and the kosum version and commit. The YAML header keeps
the fields the Hub reads (`base_model`, `library_name`, `language`, `pipeline_tag`, `tags`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from kosum.io import atomic_open
from kosum.metrics import bootstrap_ci, rouge_per_example

CARD = "README.md"
RESAMPLES = 1000


def rouge_intervals(predictions: list[str], references: list[str]) -> dict[str, list[float]]:
    """95% percentile-bootstrap interval of each mean ROUGE F1 over the test documents."""
    if not predictions:
        return {}
    scores = rouge_per_example(predictions, references)
    return {
        key: [
            float(bound)
            for bound in bootstrap_ci([s[key] for s in scores], n_resamples=RESAMPLES, seed=0)
        ]
        for key in ("rouge1", "rouge2", "rougeL")
    }


def write_model_card(
    folder: Path,
    record: dict[str, Any],
    intervals: dict[str, list[float]],
) -> Path:
    """Write `folder/README.md` for the run described by `record` (results.json's content)."""
    config = record["config"]
    model = config["model"]
    base = model.get("name_or_path") or "a random-init T5 (saved beside it, in base_model/)"
    metrics = record.get("metrics", {})
    versions = record.get("versions", {})
    header: dict[str, Any] = {
        "library_name": "peft" if record["method"] not in ("full", "none") else "transformers",
        "language": ["ko"],
        "pipeline_tag": "summarization",
        "tags": ["kosum", "summarization", str(record["method"])],
    }
    if model.get("name_or_path"):
        header["base_model"] = model["name_or_path"]
    data = config["data"]
    rows = []
    for key, name in (("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L")):
        if key in metrics:
            low, high = intervals.get(key, [float("nan")] * 2)
            interval = f"[{100 * low:.2f}, {100 * high:.2f}]"
            rows.append(f"| {name} | {100 * metrics[key]:.2f} | {interval} |")
    examples = record.get("data", {}).get("examples", {})
    tested = data.get("test_categories") or data.get("categories")
    lines = [
        "---",
        yaml.safe_dump(header, allow_unicode=True, sort_keys=False).strip(),
        "---",
        "",
        f"# {record['method']} adapter of {base}",
        "",
        "Trained with kosum (parameter-efficient fine-tuning of Korean "
        "summarisation models). Everything below is from the run's own records.",
        "",
        "## Base model",
        "",
        f"- `{base}`" + (f", revision `{model['revision']}`" if model.get("revision") else ""),
        "",
        "## Method",
        "",
        f"- `{record['method']}`: {record.get('trainable_params', 0):,} trainable of "
        f"{record.get('total_params', 0):,} parameters",
        "- settings:",
        "",
        "```json",
        json.dumps(config.get("peft", {}), ensure_ascii=False, indent=2, sort_keys=True),
        "```",
        "",
        "## Data",
        "",
        f"- source: `{data.get('source', {}).get('_target_', '?')}`, "
        f"summaries `{data.get('summary_field', '?')}`",
        f"- training categories: {', '.join(data.get('categories') or ['all'])}",
        f"- test categories: {', '.join(tested or ['all'])}",
        f"- examples: {', '.join(f'{split} {count}' for split, count in examples.items())}",
        f"- prompt: `{config.get('prompt', {}).get('template', '')}` "
        f"(applied at {config.get('prompt', {}).get('apply_at', '?')})",
        "",
        "## Decoding",
        "",
        f"- test: `{json.dumps(config['generation']['generate'], sort_keys=True)}`, "
        f"first sentence kept: {config['generation'].get('first_sentence', False)}",
        "",
        "## Test results",
        "",
        "ROUGE F1 ×100 on the test split (Korean morphemes, kosum.metrics), with the 95% "
        f"bootstrap interval over the {examples.get('test', '?')} test documents.",
        "",
        "| metric | score | 95% interval |",
        "|---|---:|---|",
        *rows,
        "",
        "## Provenance",
        "",
        f"- seed {record.get('seed')}, kosum {versions.get('kosum', '?')}, "
        f"commit `{record.get('git_commit')}`",
        f"- torch {versions.get('torch', '?')}, transformers {versions.get('transformers', '?')}, "
        f"peft {versions.get('peft', '?')}, lightning {versions.get('lightning', '?')}",
        "",
    ]
    path = folder / CARD
    with atomic_open(path) as handle:
        handle.write("\n".join(lines))
    return path
