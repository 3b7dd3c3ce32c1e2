"""One training run, top to bottom: seed → data → tokenizer → model → method → fit → test → record.

`kosum-train` (kosum.cli.train) is a thin Hydra wrapper around `run_training`; tests call the
same entry point. Everything a report needs is written into the run directory.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from kosum.data.datamodule import SummarizationDataModule
from kosum.data.prompts import PromptTemplate
from kosum.io import atomic_directory, atomic_open, write_jsonl
from kosum.methods.base import Method
from kosum.methods.factory import apply_method, as_method, parameter_counts
from kosum.models.backbone import load_model, load_tokenizer
from kosum.report.tracking import log_run_outputs
from kosum.run_folder import (
    BASE_MODEL,
    CHECKPOINTS,
    LAST_CHECKPOINT,
    MERGED_MODEL,
    METRICS,
    PREDICTIONS,
    RESULTS,
    RUN_CONFIG,
    TOKENIZER,
)
from kosum.training.budget import fit_trainable_budget
from kosum.training.checkpoint_io import cut_short_writes
from kosum.training.config_checks import build_trainer, check_config, check_launch
from kosum.training.fast_dropout import enable_fast_cpu_dropout
from kosum.training.model_card import rouge_intervals, write_model_card
from kosum.training.module import SummarizationModule
from kosum.training.peak_memory import PeakMemory
from kosum.training.run_identity import check_resume, identity
from kosum.training.run_record import (
    completed_record,
    composition,
    git_commit,
    hardware,
    library_versions,
    write_results,
)
from kosum.training.wall_clock import WallClock

log = logging.getLogger(__name__)


def build_datamodule(cfg: DictConfig) -> SummarizationDataModule:
    """The data module of `cfg.data` (its source instantiated), `cfg.prompt`, the cache and
    the seed."""
    return SummarizationDataModule.from_settings(
        OmegaConf.to_container(cfg.data, resolve=True),
        source=instantiate(cfg.data.source),
        prompt=PromptTemplate(**cfg.prompt),
        cache_dir=cfg.paths.cache_dir,
        seed=cfg.seed,
    )


def run_training(cfg: DictConfig) -> dict[str, Any]:
    """Train and test one configuration; returns the `results.json` record."""
    started = time.perf_counter()
    peak_memory = PeakMemory()  # this run's own peak: a multirun's jobs share the process
    check_config(cfg)
    budget = fit_trainable_budget(cfg)  # sets the method's size knob; None without a budget
    run_dir = Path(cfg.paths.output_dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if cfg.resume == "auto" and (finished := completed_record(run_dir, resolved)) is not None:
        log.warning("%s: this configuration completed there already; not trained again", run_dir)
        return finished
    run_identity = identity(resolved)
    resume_from = resume_checkpoint(cfg, run_dir)
    if resume_from:  # before any data is loaded: the checkpoint must be of this training
        check_resume(resume_from, run_identity)
    loggers = [instantiate(node) for node in cfg.logger.values()]
    wall_clock = WallClock(started)  # resumed runs count their earlier sessions too
    callbacks = [instantiate(node) for node in cfg.get("callbacks", {}).values()] + [wall_clock]
    trainer = build_trainer(cfg.trainer, logger=loggers, callbacks=callbacks)
    method = as_method(instantiate(cfg.peft))
    check_launch(trainer, method)
    # Under DDP every process runs this function; one (global rank 0) writes the run's files.
    writes = trainer.is_global_zero
    commit, composed = git_commit(), composition(cfg)  # recorded again when the run ends
    if writes:
        with atomic_open(run_dir / RUN_CONFIG) as handle:  # read back by eval/predict
            handle.write(OmegaConf.to_yaml(cfg, resolve=True))
        # Replaced when the run ends (completed or failed): a run killed before that is still
        # listed by kosum-report, as unfinished, instead of missing without a trace. A resumed
        # run's earlier record is kept aside (resuming a finished run to train longer).
        if resume_from:
            _keep_aside(run_dir / RESULTS)
        write_results(
            run_dir,
            {
                "status": "running",
                "method": cfg.method,
                "seed": cfg.seed,
                "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "git_commit": commit,
                "trainable_budget": budget and budget.record(),
                "config": resolved,
                "composition": composed,
            },
        )
    L.seed_everything(cfg.seed, workers=True)

    datamodule = build_datamodule(cfg)
    spec = instantiate(cfg.model)
    tokenizer = load_tokenizer(
        spec, datamodule.training_texts, datamodule.corpus_key(), cfg.paths.cache_dir
    )
    datamodule.set_tokenizer(tokenizer)
    datamodule.setup()
    if writes:
        save_pretrained(run_dir / TOKENIZER, tokenizer)

    L.seed_everything(cfg.seed, workers=True)  # model init independent of data-loading work
    base_model = load_model(spec, tokenizer)
    if spec.is_random_init and writes:  # so the adapter can be reloaded onto the very same weights
        save_pretrained(run_dir / BASE_MODEL, base_model, tokenizer)
    if cfg.gradient_checkpointing:
        base_model.gradient_checkpointing_enable({"use_reentrant": False})
    model = apply_method(base_model, method, base_revision=spec.revision)
    if cfg.get("fast_cpu_dropout", False):
        enable_fast_cpu_dropout(model)
    counts = parameter_counts(model)
    log.info("method %s: %s", cfg.method, counts)

    module = SummarizationModule(
        model,
        tokenizer,
        optimizer=instantiate(cfg.optim),
        scheduler=instantiate(cfg.scheduler),
        generation=instantiate(cfg.generation),
        run_identity=run_identity,
        method=method,
        val_generation=instantiate(cfg.val_generation),
        label_smoothing=cfg.label_smoothing,
        seed=cfg.seed,
    )
    trained = method.trains
    if not trained:
        resume_from = None
    if resume_from and writes:  # Lightning's CSV logger would delete the interrupted run's log
        _keep_aside(run_dir / METRICS)
    with warnings.catch_warnings():
        # The CSV logger, writing its first line here, warns that "previous log files will be
        # deleted" whenever its folder is not empty, and the run folder always holds .hydra/:
        # only an old metrics.csv would go, and a resume has just kept it aside.
        warnings.filterwarnings("ignore", message=r"Experiment logs directory .* is not empty")
        for logger in loggers:
            logger.log_hyperparams({**resolved, **counts})

    if trained:
        if cfg.validate_before_training and not resume_from:  # a resume has it in its checkpoint
            validate_untrained(trainer, module, datamodule)
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
        best_val = _best_val_metrics(trainer)
    else:  # zero-shot: validate once, so its val_* metrics sit beside the trained methods'
        trainer.validate(module, datamodule=datamodule)
        best_val = {"rougeL": module.last_eval_metrics["val"]["rougeL"]}
        if cfg.validate_before_training:  # untrained, it ends where it starts
            module.keep_start_metrics()
    if cfg.test:
        trainer.test(
            module, datamodule=datamodule, ckpt_path="best" if trained and best_val else None
        )

    peak_memory_mb, peak_memory_kind = peak_memory.mb(trainer.strategy.root_device)
    for logger in loggers:  # logged once, beside the per-step and per-validation metrics
        logger.log_metrics({"peak_memory_mb": peak_memory_mb or 0.0}, step=trainer.global_step)
        logger.save()
    if trained and best_val and not cfg.test:  # the test above loaded them already
        _restore_best_weights(trainer, module)  # saved weights are the ones val_rougeL describes
    if trained and writes:
        _save_trained_weights(method, model, tokenizer, run_dir)
    if cfg.merge and writes:
        merged = copy.deepcopy(model).merge_and_unload()
        save_pretrained(run_dir / MERGED_MODEL, merged, tokenizer)
    metrics = dict(module.last_eval_metrics.get("test", {}))
    metrics.update({f"val_{k}": v for k, v in best_val.items()})
    metrics.update({f"start_val_{k}": v for k, v in module.start_val_metrics.items()})
    if "test" in module.eval_outputs and writes:
        write_predictions(run_dir, module, datamodule, "test")
    record = {
        "status": "completed",
        "method": cfg.method,
        "seed": cfg.seed,
        "metrics": metrics,
        **counts,
        "trainable_budget": budget and budget.record(),
        "wall_time_s": wall_clock.elapsed_s(),
        "epochs": trainer.current_epoch if trained else 0,  # fewer after early stopping
        **module.training_speed.record(),
        "peak_memory_mb": peak_memory_mb,
        "peak_memory_kind": peak_memory_kind,
        "data": datamodule.data_summary,
        "versions": library_versions(),
        "hardware": hardware(),
        "git_commit": commit,
        "run_dir": str(run_dir),
        "config": resolved,
        "composition": composed,
    }
    if writes:
        if trained:  # replaces PEFT's empty template
            write_model_card(run_dir / method.saved_folder, record, _test_intervals(module))
        write_results(run_dir, record)
        tested = "test" in module.eval_outputs
        log_run_outputs(
            loggers,
            run_dir / method.saved_folder if trained else None,
            record,
            prediction_rows(module, datamodule, "test") if tested else [],
        )
    return record


def validate_untrained(
    trainer: L.Trainer, module: SummarizationModule, datamodule: SummarizationDataModule
) -> None:
    """Validate the model as the method built it, before any step: the run's starting point
    (`start_val_*` in results.json, step 0 of metrics.csv's validation curve). A method that
    starts from the base model exactly (LoRA's B is zero) scores the zero-shot base's
    validation; one that does not (a prefix changes every attention it reaches) scores where
    its training really starts.

    Training is unchanged by it: validation draws nothing from the global random generator
    (its data loader has its own; sampled decoding is seeded per example)."""
    trainer.validate(module, datamodule=datamodule, verbose=False)
    module.keep_start_metrics()


def _test_intervals(module: SummarizationModule) -> dict[str, list[float]]:
    """95% bootstrap intervals of the test ROUGE over the test documents ({} without a test)."""
    outputs = module.eval_outputs.get("test")
    if outputs is None:
        return {}
    references = module.trainer.datamodule.splits["test"].references
    indices, predictions = outputs.sorted_by_index()
    return rouge_intervals(predictions, [references[i] for i in indices])


def resume_checkpoint(cfg: DictConfig, run_dir: Path) -> str | None:
    """The checkpoint to resume from: `ckpt_path`, or with `resume=auto` this run's last one."""
    if cfg.ckpt_path:  # checked by check_config: a file in this run's checkpoints/
        return str(cfg.ckpt_path)
    last = run_dir / CHECKPOINTS / LAST_CHECKPOINT
    if cfg.resume != "auto":
        return None
    for leftover in cut_short_writes(last.parent):  # the kill that stopped the run hit a write
        log.warning("removing %s: a checkpoint write cut short (%s is intact)", leftover, last.name)
        leftover.unlink(missing_ok=True)
    if last.exists():
        log.warning("resuming from %s", last)
        return str(last)
    return None


def _keep_aside(path: Path) -> None:
    """Rename `path` to the first free `<stem>.before-resume-<n><suffix>`, if it exists."""
    if not path.exists():
        return
    n = 1
    while (target := path.with_name(f"{path.stem}.before-resume-{n}{path.suffix}")).exists():
        n += 1
    path.rename(target)


def _best_val_metrics(trainer: L.Trainer) -> dict[str, float]:
    checkpoint = trainer.checkpoint_callback
    if checkpoint is None or checkpoint.best_model_score is None:
        return {}
    return {"rougeL": float(checkpoint.best_model_score)}


def _restore_best_weights(trainer: L.Trainer, module: SummarizationModule) -> None:
    """Load the best checkpoint's trainable weights into `module` (after the last epoch it
    holds that epoch's weights; `trainer.test(ckpt_path="best")` only reloads when testing)."""
    best_path = trainer.checkpoint_callback.best_model_path
    checkpoint = trainer.strategy.checkpoint_io.load_checkpoint(best_path)
    incompatible = module.load_state_dict(checkpoint["state_dict"], strict=False)
    if incompatible.unexpected_keys:
        raise RuntimeError(
            f"{best_path}: weights the model does not have: {incompatible.unexpected_keys[:5]}"
        )


def _save_trained_weights(
    method: Method, model: torch.nn.Module, tokenizer: Any, run_dir: Path
) -> None:
    """The method's weights (safetensors) and the tokenizer, in the method's folder of the run
    (`adapter/`, or `model/` for full fine-tuning), which appears only once complete."""
    with atomic_directory(run_dir / method.saved_folder) as staging:
        method.save(model, staging)
        tokenizer.save_pretrained(staging)


def save_pretrained(path: Path, *objects: Any) -> None:
    """`save_pretrained` of each object into one folder, which appears only once complete."""
    with atomic_directory(path) as staging:
        for item in objects:
            item.save_pretrained(staging)


def prediction_rows(
    module: SummarizationModule, datamodule: SummarizationDataModule, split: str
) -> list[dict[str, Any]]:
    """One row per evaluated example, in dataset order: id, prediction, reference, category."""
    dataset = datamodule.splits[split]
    indices, predictions = module.eval_outputs[split].sorted_by_index()
    return [
        {
            "id": dataset.ids[i],
            "prediction": prediction,
            "reference": dataset.references[i],
            "category": dataset.categories[i],
        }
        for i, prediction in zip(indices, predictions, strict=True)
    ]


def write_predictions(
    run_dir: Path, module: SummarizationModule, datamodule: SummarizationDataModule, split: str
) -> None:
    """`predictions.jsonl`: one row per evaluated example, in dataset order."""
    write_jsonl(run_dir / PREDICTIONS, prediction_rows(module, datamodule, split))
