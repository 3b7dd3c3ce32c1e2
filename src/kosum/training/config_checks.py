"""Refuse configurations that are known to fail or to give wrong numbers, before any work.

Each check names the setting, the value and what to use instead, so a sweep job fails in
seconds with a readable message rather than hours later with NaNs or a deep traceback.
"""

from __future__ import annotations

from omegaconf import DictConfig

FP16_PRECISIONS = {"16", "16-mixed", "16-true", "fp16"}
MERGEABLE = ("LoraConfig", "IA3Config")


class ConfigError(ValueError):
    """An invalid kosum configuration (raised before training starts)."""


def check_config(cfg: DictConfig) -> None:
    precision = str(cfg.trainer.get("precision", "32-true"))
    if precision in FP16_PRECISIONS:
        raise ConfigError(
            f"trainer.precision={precision}: T5 overflows in fp16 (activations exceed 65504 and "
            "become inf/NaN). Use trainer.precision=bf16-mixed on GPUs that support it, or 32-true."
        )
    peft_target = str(cfg.peft.get("_target_", ""))
    if cfg.get("gradient_checkpointing", False) and peft_target.endswith("PrefixTuningConfig"):
        raise ConfigError(
            "gradient_checkpointing=true with peft=prefix: PEFT prefix tuning passes past key "
            "values that gradient checkpointing cannot recompute, and PEFT refuses the pair. "
            "Set gradient_checkpointing=false for prefix tuning."
        )
    if cfg.get("merge", False) and not peft_target.endswith(MERGEABLE):
        raise ConfigError(
            f"merge=true with peft={cfg.get('method')}: only LoRA and IA3 weights can be merged "
            "into the base model; set merge=false for this method"
        )
    if cfg.get("resume", False) not in (False, "auto"):
        raise ConfigError(f"resume={cfg.resume!r}: use resume=auto or ckpt_path=<checkpoint>")
    if cfg.data.batch_size < 1 or cfg.data.eval_batch_size < 1:
        raise ConfigError(
            f"data.batch_size={cfg.data.batch_size}, data.eval_batch_size="
            f"{cfg.data.eval_batch_size}: both must be >= 1"
        )
