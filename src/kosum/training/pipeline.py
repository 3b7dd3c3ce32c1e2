"""One training run, top to bottom: seed → data → tokenizer → model → method → fit → test → record.

`kosum-train` (kosum.cli.train) is a thin Hydra wrapper around `run_training`; tests call the
same entry point. Its bookkeeping (clock, peak memory, the run folder's records) is a `RunBook`
(kosum.training.run_book); everything a report needs is written into the run directory.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from kosum.data.datamodule import SummarizationDataModule
from kosum.data.prompts import PromptTemplate
from kosum.io import atomic_directory
from kosum.methods.base import Method
from kosum.methods.factory import apply_method, as_method, parameter_counts
from kosum.models.backbone import ModelSpec, load_model, load_tokenizer
from kosum.run_folder import (
    BASE_MODEL,
    CHECKPOINTS,
    LAST_CHECKPOINT,
    MERGED_MODEL,
    TOKENIZER,
)
from kosum.training.budget import fit_trainable_budget
from kosum.training.checkpoint_io import cut_short_writes
from kosum.training.config_checks import build_trainer, check_config, check_launch
from kosum.training.fast_dropout import enable_fast_cpu_dropout
from kosum.training.module import SummarizationModule
from kosum.training.run_book import RunBook
from kosum.training.run_identity import check_resume, identity
from kosum.training.run_record import completed_record

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
    book = RunBook(cfg)  # the run's clock and peak memory count from here
    check_config(cfg)
    book.settle(fit_trainable_budget(cfg))  # the budget sets the method's size knob
    if cfg.resume == "auto" and (finished := completed_record(book.run_dir, book.resolved)):
        log.warning(
            "%s: this configuration completed there already; not trained again", book.run_dir
        )
        return finished
    run_identity = identity(book.resolved)
    resume_from = resume_checkpoint(cfg, book.run_dir)
    if resume_from:  # before any data is loaded: the checkpoint must be of this training
        check_resume(resume_from, run_identity)
    loggers = [instantiate(node) for node in cfg.logger.values()]
    callbacks = [instantiate(node) for node in cfg.get("callbacks", {}).values()]
    trainer = build_trainer(cfg.trainer, logger=loggers, callbacks=[*callbacks, book.wall_clock])
    method = as_method(instantiate(cfg.peft))
    check_launch(trainer, method)
    book.begin(trainer, resumed=bool(resume_from))  # under DDP, global rank 0 writes

    spec = instantiate(cfg.model)
    datamodule, tokenizer = prepare_data(cfg, spec, book)
    model = build_model(cfg, spec, tokenizer, method, book)
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
    resume_from = resume_from if method.trains else None
    book.log_hyperparams(loggers, parameter_counts(model), resumed=bool(resume_from))

    best_val = train_or_validate(cfg, trainer, module, datamodule, resume_from)
    if cfg.test:
        best = method.trains and best_val
        trainer.test(module, datamodule=datamodule, ckpt_path="best" if best else None)
    book.log_peak_memory(trainer, loggers)
    save_weights(cfg, trainer, module, method, tokenizer, book, best_val)
    return book.close(trainer, module, datamodule, method, best_val, loggers)


def prepare_data(
    cfg: DictConfig, spec: ModelSpec, book: RunBook
) -> tuple[SummarizationDataModule, Any]:
    """The data module, set up with the run's tokenizer (saved in the run folder)."""
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg)
    tokenizer = load_tokenizer(
        spec, datamodule.training_texts, datamodule.corpus_key(), cfg.paths.cache_dir
    )
    datamodule.set_tokenizer(tokenizer)
    datamodule.setup()
    if book.writes:
        save_pretrained(book.run_dir / TOKENIZER, tokenizer)
    return datamodule, tokenizer


def build_model(
    cfg: DictConfig, spec: ModelSpec, tokenizer: Any, method: Method, book: RunBook
) -> torch.nn.Module:
    """The base model with the method applied."""
    L.seed_everything(cfg.seed, workers=True)  # model init independent of data-loading work
    base_model = load_model(spec, tokenizer)
    if spec.is_random_init and book.writes:  # so the adapter can be reloaded onto these weights
        save_pretrained(book.run_dir / BASE_MODEL, base_model, tokenizer)
    if cfg.gradient_checkpointing:
        base_model.gradient_checkpointing_enable({"use_reentrant": False})
    model = apply_method(base_model, method, base_revision=spec.revision)
    if cfg.get("fast_cpu_dropout", False):
        enable_fast_cpu_dropout(model)
    return model


def train_or_validate(
    cfg: DictConfig,
    trainer: L.Trainer,
    module: SummarizationModule,
    datamodule: SummarizationDataModule,
    resume_from: str | None,
) -> dict[str, float]:
    """Train (after a validation of the untrained model, if asked) and return the best
    validation score ({} without one). A method that trains nothing (zero-shot) is validated
    once instead, so its val_* metrics sit beside the trained methods'."""
    if not module.method.trains:
        trainer.validate(module, datamodule=datamodule)
        if cfg.validate_before_training:  # untrained, it ends where it starts
            module.keep_start_metrics()
        return {"rougeL": module.last_eval_metrics["val"]["rougeL"]}
    if cfg.validate_before_training and not resume_from:  # a resume reads it from the checkpoint
        validate_untrained(trainer, module, datamodule)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    if cfg.validate_before_training and not module.start_val_metrics:
        log.warning(
            "validate_before_training=true, but %s was trained without it: no start_val_* in "
            "results.json (the untrained model cannot be validated after a resume)",
            resume_from,
        )
    checkpoint = trainer.checkpoint_callback
    if checkpoint is None or checkpoint.best_model_score is None:
        return {}
    return {"rougeL": float(checkpoint.best_model_score)}


def save_weights(
    cfg: DictConfig,
    trainer: L.Trainer,
    module: SummarizationModule,
    method: Method,
    tokenizer: Any,
    book: RunBook,
    best_val: dict[str, float],
) -> None:
    """The trained weights of the best checkpoint (the ones `val_rougeL` describes) in the
    method's folder of the run, and the merged model if asked."""
    if method.trains and best_val and not cfg.test:  # the test loaded them already
        _restore_best_weights(trainer, module)
    if method.trains and book.writes:
        _save_trained_weights(method, module.model, tokenizer, book.run_dir)
    if cfg.merge and book.writes:
        merged = copy.deepcopy(module.model).merge_and_unload()
        save_pretrained(book.run_dir / MERGED_MODEL, merged, tokenizer)


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
