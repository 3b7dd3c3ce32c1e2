"""`kosum-estimate`: the memory one training step of a `kosum-train` configuration needs, and
whether it fits a GPU, from the same overrides and without loading anything:
    kosum-estimate model=pko_t5_large_shape peft=lora data.batch_size=16 gpu_memory_gb=80
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from kosum.config import config_dir, register_resolvers
from kosum.errors import user_error
from kosum.training.budget import fit_trainable_budget
from kosum.training.config_checks import check_config
from kosum.training.memory_estimate import estimate_memory

register_resolvers()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="estimate")
def main(cfg: DictConfig) -> None:
    try:
        check_config(cfg)
        fit_trainable_budget(cfg)
        estimate = estimate_memory(cfg)
    except Exception as error:
        cause = user_error(error)
        if cause is None:
            raise
        print(f"kosum-estimate: error: {cause}", file=sys.stderr)
        sys.exit(2)
    data = cfg.data
    print(
        f"{cfg.method} on {cfg.model.name_or_path or 'a random-init T5'}, "
        f"precision {cfg.trainer.precision}, batch {data.batch_size} x source "
        f"{data.max_source_length} x target {data.max_target_length} tokens (no padding: the "
        "worst case), per process"
    )
    print("\n".join(estimate.lines(cfg.get("gpu_memory_gb"))))


if __name__ == "__main__":
    main()
