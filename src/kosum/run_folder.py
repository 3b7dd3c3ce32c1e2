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
