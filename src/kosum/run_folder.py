"""What kosum writes in a run folder, named here and nowhere else (docs/run-records.md says
what each holds):

    resolved_config.yaml  the run's config, resolved (kosum-eval and kosum-predict read it)
    results.json          the run's record
    predictions.jsonl     its test predictions
    metrics.csv           Lightning's CSV log
    checkpoints/          last.ckpt and the best checkpoint (conf/callbacks/default.yaml)
    adapter/ or model/    the trained weights: an adapter, or a fully fine-tuned model
    base_model/           a random-init base, kept so the adapter reloads onto its weights
    merged/               the adapter folded into the base (merge=true)
    tokenizer/

kosum-predict records how it made a submission in `prediction.json`, in its own run folder.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

RUN_CONFIG = "resolved_config.yaml"
RESULTS = "results.json"
PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.csv"
CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
ADAPTER = "adapter"
FULL_MODEL = "model"
BASE_MODEL = "base_model"
MERGED_MODEL = "merged"
TOKENIZER = "tokenizer"
PREDICTION_RECORD = "prediction.json"


def drop_older_layout(config: MutableMapping[str, Any]) -> None:
    """Remove, in place, what runs before 2026-12-08 recorded in their config and no longer
    means anything: `data.loader`, a copy of the data keys (read from `data.*` now). Applied
    wherever an older run's config is compared with or read like a current one."""
    data = config.get("data")
    if isinstance(data, MutableMapping) and "loader" in data:
        del data["loader"]
