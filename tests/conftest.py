"""Shared fixtures: composing kosum's real Hydra configs and running the real entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from kosum.config import config_dir, register_resolvers

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

register_resolvers()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real AI-Hub samples beside the repo (kosum's machines and CI only)."""
    if not (SHARED_DATA / "aihub582_sample").is_dir():
        pytest.skip(
            f"real data not found at {SHARED_DATA} (it exists on kosum's machines and CI only)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def competition_csv(shared_data: Path) -> Path:
    """The competition-style CSV of the real samples (kosum's machines and CI only)."""
    path = shared_data / "competition_sample.csv"
    if not path.is_file():
        pytest.skip(f"real data not found at {path} (it exists on kosum's machines and CI only)")
    return path


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache (synthetic corpora, tokenizers, tokenised splits) for the whole session."""
    return tmp_path_factory.mktemp("kosum-cache")


@pytest.fixture
def compose_train(cache_dir: Path) -> Callable[..., DictConfig]:
    """Compose `conf/train.yaml` with overrides, as `kosum-train` would, with Hydra's runtime
    set so `${hydra:...}` interpolations resolve. The run dir goes to `run_dir`."""

    def _compose(run_dir: Path, *overrides: str, config_name: str = "train") -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose(
                config_name=config_name,
                overrides=[
                    f"hydra.run.dir={run_dir}",
                    f"paths.output_dir={run_dir}",
                    f"paths.root_dir={REPO_ROOT}",
                    f"paths.cache_dir={cache_dir}",
                    *overrides,
                ],
                return_hydra_config=True,
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):  # a job's config, as Hydra hands it to the task, has no `hydra` key
            del cfg["hydra"]
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture
def run_cli(cache_dir: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run a kosum console script in a subprocess with the session cache; returns the result."""

    def _run(module: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, "KOSUM_CACHE_DIR": str(cache_dir), "WANDB_MODE": "offline"}
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=cwd or REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    return _run
