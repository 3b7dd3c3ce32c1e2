"""Where kosum's Hydra configs live, and the OmegaConf resolvers they use.

Configs are the repository's top-level `conf/` folder (an editable install, the supported way);
`KOSUM_CONFIG_DIR` points elsewhere for a custom tree.
"""

from __future__ import annotations

import netrc
import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

CHECKOUT = Path(__file__).resolve().parents[2]  # the repository an editable install runs from


def config_dir() -> str:
    override = os.environ.get("KOSUM_CONFIG_DIR")
    candidate = Path(override) if override else CHECKOUT / "conf"
    if not (candidate / "train.yaml").exists():
        raise FileNotFoundError(
            f"kosum's Hydra configs were not found at {candidate}. Install kosum from a checkout "
            "with `pip install -e .` (see README) or set KOSUM_CONFIG_DIR to a conf/ folder."
        )
    return str(candidate)


def wandb_offline() -> bool:
    """W&B goes offline unless it has credentials and WANDB_MODE does not say otherwise.
    `WANDB_MODE=disabled` is left to wandb (no run, no files): an offline logger would set
    WANDB_MODE to dryrun and write an offline run anyway."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in {"offline", "dryrun"}:
        return True
    if mode in {"online", "disabled"} or os.environ.get("WANDB_API_KEY"):
        return False
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is None
    except (FileNotFoundError, netrc.NetrcParseError):
        return True


def category_union(first: Sequence[str] | None, second: Sequence[str] | None) -> list[str] | None:
    """The categories a source loads for training categories `first` and test categories
    `second`: `first`, then what `second` adds. `first` None means every category; `second`
    None, the test's following the training's."""
    if second is None:
        return None if first is None else list(first)
    if first is None:
        return None
    return [*first, *(name for name in second if name not in first)]


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("kosum.wandb_offline"):
        OmegaConf.register_new_resolver("kosum.wandb_offline", wandb_offline)
    if not OmegaConf.has_resolver("kosum.union"):  # the categories a source loads
        OmegaConf.register_new_resolver("kosum.union", category_union)
    if not OmegaConf.has_resolver("kosum.checkout"):  # whatever the working directory
        OmegaConf.register_new_resolver("kosum.checkout", lambda: str(Path(config_dir()).parent))
