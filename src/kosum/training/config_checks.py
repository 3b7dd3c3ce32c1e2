"""Refuse configurations that are known to fail or to give wrong numbers, before any work.

Each check names the setting, the value and what to use instead, so a sweep job fails in
seconds with a readable message rather than hours later with NaNs or a deep traceback.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from transformers import GenerationConfig, GenerationMixin, SchedulerType, get_scheduler

from kosum.errors import ConfigError, InputError
from kosum.methods.base import Method
from kosum.methods.factory import as_method
from kosum.methods.peft_method import MERGEABLE
from kosum.metrics.rouge import ROUGE_KEYS
from kosum.run_folder import CHECKPOINTS
from kosum.training.budget import check_budget
from kosum.training.optimizers import build_optimizer

log = logging.getLogger(__name__)

FP16_PRECISIONS = {"16", "16-mixed", "16-true", "fp16"}
# results.json `metrics`: the test split's (only with test=true) and the best validation ROUGE-L.
TEST_METRICS = (*ROUGE_KEYS, "gen_len", "loss")
ALWAYS_RECORDED = ("val_rougeL",)
# Keywords `generate()` removes from its **kwargs itself (transformers 5.x).
GENERATE_POPPED = {"tokenizer", "assistant_tokenizer", "trust_remote_code"}


# Sizes that fail deep inside tokenizers or PEFT (which checks `r` only once the model is
# built); null where a config leaves one to a default.
POSITIVE_INTEGERS = (
    "data.batch_size",
    "data.eval_batch_size",
    "data.max_source_length",
    "data.max_target_length",
    "peft.r",
    "peft.num_virtual_tokens",
)
BOOLEAN_SETTINGS = (
    "test",
    "merge",
    "gradient_checkpointing",
    "fast_cpu_dropout",
    "validate_before_training",
)


def check_config(cfg: DictConfig) -> None:
    precision = str(cfg.trainer.get("precision", "32-true"))
    if precision in FP16_PRECISIONS:
        raise ConfigError(
            f"trainer.precision={precision}: T5 overflows in fp16 (activations exceed 65504 and "
            "become inf/NaN). Use trainer.precision=bf16-mixed on GPUs that support it, or 32-true."
        )
    if precision == "bf16-true":
        log.warning(
            "trainer.precision=bf16-true: weights and AdamW moments are kept in bf16 (no fp32 "
            "master copy), so small updates round away; use bf16-mixed unless memory forbids it"
        )
    for key in POSITIVE_INTEGERS:
        value = OmegaConf.select(cfg, key)
        if value is not None and not (isinstance(value, int) and value >= 1):
            raise ConfigError(f"{key}={value!r}: must be a positive integer")
    for key in BOOLEAN_SETTINGS:
        value = cfg.get(key)
        if value is not None and not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r}: true or false")
    method = build_method(cfg)
    if cfg.get("gradient_checkpointing", False) and not method.allows_gradient_checkpointing:
        raise ConfigError(
            f"gradient_checkpointing=true with {method.name} (peft): gradient "
            "checkpointing cannot recompute this method (PEFT prefix tuning passes past key "
            "values and PEFT refuses the pair; peft=prefix_encdec can be checkpointed). Set "
            "gradient_checkpointing=false."
        )
    if cfg.get("merge", False) and not method.mergeable:
        raise ConfigError(
            f"merge=true with {method.name} (peft): only weights that are a delta on the base "
            f"weights ({MERGEABLE}) can be merged into it; set merge=false for this method"
        )
    check_budget(cfg, method)
    if cfg.get("resume", False) not in (False, "auto"):
        raise ConfigError(f"resume={cfg.resume!r}: use resume=auto or ckpt_path=<checkpoint>")
    _check_optimized_metric(cfg)
    _check_generation(cfg)
    _check_scheduler(cfg, _check_optimizer(cfg))
    _check_validation_runs(cfg, method)
    _check_resume(cfg, method)


def build_method(cfg: DictConfig) -> Method:
    """`cfg.peft` built and checked (`Method.check`): a value its class refuses is a
    `ConfigError` naming the method's settings."""
    try:
        method = as_method(instantiate(cfg.peft))
    except InstantiationException as error:
        cause = error.__cause__ or error
        if isinstance(cause, InputError):
            raise cause from None
        settings = OmegaConf.to_container(cfg.peft, resolve=False)
        raise ConfigError(f"peft {settings}: {cause}") from None
    method.check()
    return method


def _check_optimizer(cfg: DictConfig) -> torch.optim.Optimizer:
    """The optimiser is built in `configure_optimizers`, after the data and model are loaded:
    build it here on a stand-in (one LoRA layer), so a wrong argument fails now, naming
    `optim`."""
    try:
        return build_optimizer(instantiate(cfg.optim), stand_in_model())
    except Exception as error:  # any failure to build it is the config's
        settings = OmegaConf.to_container(cfg.optim, resolve=True)
        raise ConfigError(f"optim {settings}: {error.__cause__ or error}") from None


def stand_in_model(width: int = 4, rank: int = 2) -> torch.nn.Module:
    """A one-layer PEFT LoRA model: what any optimiser factory of `conf/optim/` can be built
    on (LoRA+ needs LoRA's A and B matrices)."""
    import peft

    layer = torch.nn.Sequential()
    layer.add_module("proj", torch.nn.Linear(width, width))
    return peft.get_peft_model(layer, peft.LoraConfig(r=rank, target_modules=["proj"]))


def _check_scheduler(cfg: DictConfig, optimizer: torch.optim.Optimizer) -> None:
    """The schedule is built in `configure_optimizers`, after the data and model are loaded:
    build it here on `optimizer` (of a dummy parameter) with what kosum passes (warmup and the
    number of steps), so a schedule that needs more (`cosine_with_min_lr`'s minimum,
    `warmup_stable_decay`'s decay steps), refuses the learning rate (`polynomial` below its
    end rate) or is not a per-step schedule (`reduce_lr_on_plateau`, `greedy`) fails now."""
    settings = cfg.get("scheduler")
    if settings is None:
        return
    name = settings.get("name", "linear")  # SchedulerSettings' default
    names = [schedule.value for schedule in SchedulerType]
    if name not in names:
        raise ConfigError(f"scheduler.name={name!r}: not a transformers schedule; one of {names}")
    warmup_steps = settings.get("warmup_steps") or 0  # null: the ratio decides
    warmup_ratio = settings.get("warmup_ratio") or 0.0
    if not (warmup_steps >= 0 and 0.0 <= warmup_ratio <= 1.0):
        raise ConfigError(
            f"scheduler.warmup_steps={warmup_steps}, scheduler.warmup_ratio={warmup_ratio}: "
            "need warmup_steps >= 0 and 0 <= warmup_ratio <= 1"
        )
    try:
        schedule = get_scheduler(name, optimizer, num_warmup_steps=0, num_training_steps=10)
    except Exception as error:  # any failure to build it is the config's
        schedule, reason = None, f"{type(error).__name__}: {error}"
    else:
        reason = f"it builds a {type(schedule).__name__}, not a per-step schedule"
    if not isinstance(schedule, LRScheduler) or isinstance(schedule, ReduceLROnPlateau):
        raise ConfigError(
            f"scheduler.name={name}: kosum steps the schedule every optimiser step with only "
            f"the warmup and the number of training steps, and {reason}; use linear, cosine, "
            "cosine_with_restarts, polynomial, constant, constant_with_warmup or inverse_sqrt"
        )


def _check_validation_runs(cfg: DictConfig, method: Method) -> None:
    """The best checkpoint, `val_rougeL` and the weights saved all come from validation: a run
    that never validates would train to the end and then test the last weights, unrecorded."""
    trainer = cfg.trainer
    if trainer.get("fast_dev_run"):
        return
    if trainer.get("limit_val_batches") == 0:
        raise ConfigError(
            "trainer.limit_val_batches=0: kosum keeps the best checkpoint by validation "
            "ROUGE-L, so a run must validate; use a fraction or a count of batches instead"
        )
    every = trainer.get("check_val_every_n_epoch") or 1
    epochs, steps = trainer.get("max_epochs"), trainer.get("max_steps", -1)
    if not method.trains:
        return  # trains nothing whatever the length, and is validated once
    if steps == 0 or epochs == 0 or trainer.get("limit_train_batches") == 0:
        raise ConfigError(
            f"trainer.max_epochs={epochs}, trainer.max_steps={steps}, trainer."
            f"limit_train_batches={trainer.get('limit_train_batches')}: the run would train "
            "nothing and test the untrained model as if trained; for that use peft=none"
        )
    if (steps is None or steps < 0) and epochs is not None and 0 < epochs < every:
        raise ConfigError(
            f"trainer.check_val_every_n_epoch={every} with trainer.max_epochs={epochs}: the run "
            "would never validate (no best checkpoint, no val_rougeL); lower one or raise the other"
        )


def _check_resume(cfg: DictConfig, method: Method) -> None:
    """A checkpoint must exist, belong to this run's folder, and be of a method that trains."""
    ckpt_path = cfg.get("ckpt_path")
    if not ckpt_path:  # resume=auto may stay on for a sweep's zero-shot jobs: nothing to find
        return
    if not method.trains:
        raise ConfigError(
            f"ckpt_path={ckpt_path} with a zero-shot run (peft=none): it trains nothing, so "
            "there is nothing to resume; drop ckpt_path"
        )
    checkpoint = Path(ckpt_path)
    if not checkpoint.is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    own = Path(cfg.paths.output_dir) / CHECKPOINTS
    if checkpoint.resolve().parent != own.resolve():
        raise ConfigError(
            f"ckpt_path={ckpt_path} belongs to another run folder than this run's ({own.parent}):"
            " Lightning tracks the best checkpoint only within its own folder, so the resumed "
            "run would forget it and test its last weights. Resume in that run's folder: "
            f"kosum-train ... hydra.run.dir={checkpoint.resolve().parent.parent} resume=auto "
            "(or ckpt_path=<a checkpoint in it>)"
        )


def _check_optimized_metric(cfg: DictConfig) -> None:
    """A sweep optimises `optimized_metric` of each run's results.json: a name that will not be
    there would only show after every trial has trained."""
    optimized = cfg.get("optimized_metric")
    if optimized is None:
        return
    names = list(optimized) if isinstance(optimized, ListConfig) else [str(optimized)]
    available = (*ALWAYS_RECORDED, *(TEST_METRICS if cfg.get("test", True) else ()))
    unknown = [name for name in names if name not in available]
    if unknown:
        hint = "" if cfg.get("test", True) else " (test metrics need test=true)"
        raise ConfigError(
            f"optimized_metric={names}: {unknown} not among the recorded metrics "
            f"{list(available)}{hint}"
        )


def _check_generation(cfg: DictConfig) -> None:
    """`generation.generate` and `val_generation.generate` go to `model.generate()` at the
    first validation or the test, after a whole epoch or training: a misspelt or invalid
    argument must stop the run now. A label smoothing outside [0, 1) too."""
    for group in ("generation", "val_generation"):
        generate = (cfg.get(group) or {}).get("generate")
        if generate is not None:
            check_generate_arguments(OmegaConf.to_container(generate, resolve=True))
    smoothing = cfg.get("label_smoothing", 0.0)
    if isinstance(smoothing, bool) or not isinstance(smoothing, int | float):
        raise ConfigError(f"label_smoothing={smoothing!r}: a number in [0, 1)")
    if not 0.0 <= smoothing < 1.0:
        raise ConfigError(f"label_smoothing={smoothing}: a number in [0, 1)")


def check_generate_arguments(arguments: dict) -> None:
    """Refuse `generate()` arguments it does not know or a generation config it rejects
    (kosum-train before training; kosum-eval and kosum-predict before loading a model)."""
    config_fields = set(GenerationConfig().to_dict())
    unknown = sorted(key for key in arguments if key not in config_fields | _generate_parameters())
    if unknown:
        raise ConfigError(
            f"generation.generate: unknown generate() argument(s) {unknown} "
            "(see transformers' GenerationConfig for the names)"
        )
    try:  # the generation-config part; generate()'s own parameters are not config fields
        GenerationConfig(**{k: v for k, v in arguments.items() if k in config_fields}).validate()
    except ValueError as error:
        raise ConfigError(f"generation.generate={arguments}: {error}") from None


def _generate_parameters() -> set[str]:
    """`model.generate()`'s own parameters (the inputs aside: kosum passes them) and the
    keywords it pops before handing the rest to the model."""
    parameters = inspect.signature(GenerationMixin.generate).parameters
    own = {name for name in parameters if name not in ("self", "inputs", "kwargs")}
    return own | GENERATE_POPPED


def build_trainer(settings: DictConfig, **arguments: Any) -> L.Trainer:
    """`cfg.trainer` built (Lightning checks its values only then: `precision=17`, an unknown
    accelerator): a value it refuses is a `ConfigError` naming the trainer settings."""
    try:
        return instantiate(settings, **arguments)
    except (InstantiationException, ValueError, MisconfigurationException) as error:
        cause = error.__cause__ if isinstance(error, InstantiationException) else error
        if not isinstance(cause, ValueError | MisconfigurationException):
            raise
        raise ConfigError(f"trainer: {cause}") from error


def check_launch(trainer: L.Trainer, method: Method) -> None:
    """Refuse what the built trainer cannot do with this method: FSDP for an adapter (it shards
    what trains, and an adapter trains too little for that to pay; DDP trains it), and a
    multi-process strategy whose processes Lightning would start by re-running the command line
    (DDP on one machine) inside a Hydra multirun: each process would run the whole sweep
    (Lightning's launcher passes `--multirun` on). Under SLURM or torchrun the processes exist
    already and nothing is re-run."""
    if isinstance(trainer.strategy, FSDPStrategy) and method.has_adapter:
        raise ConfigError(
            f"trainer=fsdp with peft={method.name}: FSDP is for full fine-tuning (peft=full); "
            "train an adapter across GPUs with trainer=ddp"
        )
    launcher = trainer.strategy.launcher
    environment = getattr(trainer.strategy, "cluster_environment", None)
    if (
        isinstance(launcher, _SubprocessScriptLauncher)
        and trainer.world_size > 1
        and environment is not None
        and not environment.creates_processes_externally
        and HydraConfig.initialized()
        and HydraConfig.get().mode == RunMode.MULTIRUN
    ):
        raise ConfigError(
            f"trainer.strategy={type(trainer.strategy).__name__} with {trainer.world_size} "
            "processes in a --multirun: Lightning starts them by re-running the command, which "
            "would re-run the sweep; sweep DDP runs with launcher=slurm (tasks_per_node = GPUs "
            "per node) or run them one at a time without --multirun"
        )
