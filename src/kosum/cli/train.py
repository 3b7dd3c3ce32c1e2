"""`kosum-train`: train and test one configuration (or a sweep with --multirun).

    kosum-train experiment=smoke
    kosum-train --multirun peft=lora,prefix seed=1,2,3
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from kosum.config import config_dir, register_resolvers
from kosum.training.pipeline import run_training
from kosum.training.run_record import record_failures

register_resolvers()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
@record_failures
def main(cfg: DictConfig) -> Any:
    record = run_training(cfg)
    # The optimisation target for sweepers (Optuna): test ROUGE-L, else best validation ROUGE-L.
    metrics = record["metrics"]
    return metrics.get("rougeL", metrics.get("val_rougeL"))


if __name__ == "__main__":
    main()
