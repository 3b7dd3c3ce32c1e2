"""`kosum-predict`: summarise documents with a trained run and write a submission CSV `id,summary`.

    kosum-predict run=outputs/train/runs/<time> input=test.csv output=submission.csv
    kosum-predict run=<dir> input=test.csv output=sub.csv generation=seed batch_size=32 merge=true
    kosum-predict model=lcw99_t5_large prompt=seed_oneline generation=seed \
        input=test.csv output=sub.csv

The output has one row per input document, in input order, written atomically (UTF-8, header
`id,summary`). An empty input text keeps its row with an empty summary; inputs longer than the
maximum source length are truncated; both are reported. Bad input (missing file or column,
malformed row, empty or duplicate ids, an impossible option) exits with status 2 and a one-line
message. docs/inference.md describes the options and the decoding presets.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from transformers import PreTrainedTokenizerBase

from kosum.cli.writable_output import unwritable_reason
from kosum.config import config_dir, register_resolvers
from kosum.data.prompts import PromptTemplate
from kosum.errors import InputError, WriteFailed, some
from kosum.generation import GenerationSettings
from kosum.inference.batched import GenerationResult, generate_summaries
from kosum.inference.inputs import InputDocuments, read_inputs
from kosum.io import atomic_open, write_json, write_jsonl
from kosum.methods.factory import method_of_model
from kosum.methods.peft_method import MERGEABLE
from kosum.models.backbone import ModelSpec, load_model, load_tokenizer
from kosum.models.trained import kosum_node, load_trained, run_config
from kosum.run_folder import PREDICTION_RECORD, RUN_CONFIG
from kosum.training.config_checks import ConfigError, check_generate_arguments
from kosum.training.run_record import git_commit, hardware, library_versions

register_resolvers()
log = logging.getLogger(__name__)

FROM_RUN = ("prompt", "generation")
DEFAULT_MAX_SOURCE_LENGTH = 1024


def prediction_settings(
    cfg: DictConfig,
) -> tuple[PromptTemplate, GenerationSettings, DictConfig | None]:
    """Prompt and decoding: chosen on the command line, else the training run's."""
    trained = None if cfg.run is None else run_config(cfg.run)
    chosen = {key: cfg.get(key) for key in FROM_RUN}
    for key in FROM_RUN:
        if chosen[key] is None and trained is not None and trained.get(key) is not None:
            chosen[key] = OmegaConf.create(kosum_node(trained, key, f"{cfg.run}: {RUN_CONFIG}"))
    missing = [key for key in FROM_RUN if chosen[key] is None]
    if missing:
        raise InputError(
            f"no training run config to take {missing} from: choose them on the command line, "
            "e.g. prompt=none generation=seed"
        )
    prompt = PromptTemplate(**OmegaConf.to_container(chosen["prompt"], resolve=True))
    settings: GenerationSettings = instantiate(chosen["generation"])
    try:
        check_generate_arguments(settings.generate)
    except ConfigError as error:
        raise InputError(str(error)) from None
    return prompt, settings, trained


def load_for_prediction(cfg: DictConfig) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """The model to generate with: a trained run/adapter, or a pretrained `model=` zero-shot."""
    if (cfg.run is None) == (cfg.get("model") is None):
        raise InputError("choose exactly one of run=<run dir or adapter> and model=<config>")
    try:
        if cfg.run is not None:
            model, tokenizer = load_trained(cfg.run, cfg.base_model, cfg.allow_pickle)
        else:
            spec: ModelSpec = instantiate(cfg.model)
            if spec.is_random_init:
                raise InputError(
                    f"model={_model_choice()} is a random-init architecture (nothing learned): "
                    "pass run=<a trained run> instead"
                )
            tokenizer = load_tokenizer(spec, list, "", cfg.paths.cache_dir)
            model = load_model(spec, tokenizer).eval()
    except OSError as error:  # FileNotFoundError included: the messages say what is missing
        raise InputError(str(error)) from None
    if cfg.merge:
        model = merged(model)
    return model, tokenizer


def _model_choice() -> str:
    """The `model=` option as typed (its config name), for messages."""
    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.choices.get("model"))
    return "<model config>"


def merged(model: torch.nn.Module) -> torch.nn.Module:
    """The base model with the adapter's weights folded in (LoRA, IA3 and the other methods
    whose weights are a delta on the base's); refused for other methods."""
    method = method_of_model(model)
    if not method.has_adapter:
        raise InputError("merge=true: this model has no adapter to merge (full or base model)")
    if not method.mergeable:
        raise InputError(
            f"merge=true works for {MERGEABLE} adapters only; this adapter is {method.name}, "
            "whose weights are not a delta on the base weights. Drop merge=true."
        )
    return model.merge_and_unload().eval()


def resolve_max_source_length(
    cfg: DictConfig, trained: DictConfig | None, tokenizer: PreTrainedTokenizerBase
) -> int:
    if cfg.max_source_length is not None:
        return int(cfg.max_source_length)
    if trained is not None and trained.get("data", {}).get("max_source_length"):
        return int(trained.data.max_source_length)
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < 100_000:  # unset is ~1e30
        return model_max
    return DEFAULT_MAX_SOURCE_LENGTH


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise InputError(f"device={name!r}: use auto, cpu, cuda or cuda:<index>") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device={name}: no CUDA device is available")
    return device


def check_options(cfg: DictConfig) -> None:
    """Values Hydra passes through as typed (`merge=maybe` is a string, and truthy)."""
    for key in ("input", "output"):
        if OmegaConf.is_missing(cfg, key):
            raise InputError(f"{key}=<path> is required")
    for key in ("merge", "sort_by_length", "progress"):
        if not isinstance(cfg[key], bool):
            raise InputError(f"{key}={cfg[key]!r}: use true or false")
    for key, minimum in (("batch_size", 1), ("max_source_length", 1), ("seed", 0)):
        value = cfg[key]
        if value is None and key == "max_source_length":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise InputError(f"{key}={value!r}: must be an integer >= {minimum}")
    _check_output_paths(cfg)


def _check_output_paths(cfg: DictConfig) -> None:
    """Before anything is generated: the submission and timings files must be new paths of
    their own (writing one over the input, or over the other, would lose it), in folders
    that can be written."""
    written = {"output": Path(cfg.output)}
    if cfg.get("timings"):
        written["timings"] = Path(cfg.timings)
    for key, path in written.items():
        if path.is_dir():
            raise InputError(f"{key}={path}: is a folder; give a file path")
        if path.resolve() == Path(cfg.input).resolve():
            raise InputError(f"{key}={path}: is the input file; write elsewhere")
        if (reason := unwritable_reason(path.absolute().parent)) is not None:
            raise InputError(f"{key}={path}: cannot be written ({reason})")
    if len({path.resolve() for path in written.values()}) < len(written):
        raise InputError(f"output and timings are the same file ({cfg.output}); use two paths")


def write_submission(path: str | Path, ids: list[str], summaries: list[str]) -> None:
    with atomic_open(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "summary"])
        writer.writerows(zip(ids, summaries, strict=True))


def timing_rows(
    documents: InputDocuments, generated: list[int], result: GenerationResult, max_length: int
) -> list[dict[str, Any]]:
    """One JSON object per input row; `generated[k]` is the row of the k-th generated text."""
    rows: list[dict[str, Any]] = [{"id": doc_id, "empty": True} for doc_id in documents.ids]
    for k, row in enumerate(generated):
        batch = result.batches[result.batch_of[k]]
        rows[row] = {
            "id": documents.ids[row],
            "empty": False,
            "input_tokens": result.input_tokens[k],
            "truncated": result.input_tokens[k] > max_length,
            "batch": result.batch_of[k],
            "batch_size": batch.size,
            "batch_seconds": round(batch.seconds, 4),
            "seconds_per_summary": round(batch.seconds / batch.size, 4),
        }
    return rows


def run_prediction(cfg: DictConfig) -> dict[str, Any]:
    """Summarise `cfg.input` into `cfg.output`; returns what was done (also logged)."""
    check_options(cfg)
    documents = read_inputs(cfg.input)
    for skipped in documents.skipped:
        log.warning("no row for %s: %s", skipped.path, skipped.reason)
    prompt, settings, trained = prediction_settings(cfg)
    device = resolve_device(cfg.device)
    model, tokenizer = load_for_prediction(cfg)
    model.to(device)
    max_length = resolve_max_source_length(cfg, trained, tokenizer)

    generated = [row for row, text in enumerate(documents.texts) if text]
    result = generate_summaries(
        model,
        tokenizer,
        [prompt.format(documents.texts[row], "inference") for row in generated],
        settings,
        batch_size=cfg.batch_size,
        max_source_length=max_length,
        sort_by_length=cfg.sort_by_length,
        progress=cfg.progress,
        seed=cfg.seed,
    )
    summaries = [""] * len(documents.ids)
    for row, summary in zip(generated, result.summaries, strict=True):
        summaries[row] = summary
    write_submission(cfg.output, documents.ids, summaries)
    if cfg.timings:
        write_jsonl(cfg.timings, timing_rows(documents, generated, result, max_length))

    truncated_ids = [documents.ids[generated[k]] for k in result.truncated]
    report = {
        "output": str(cfg.output),
        "rows": len(documents.ids),
        "generated": len(generated),
        "empty_text_ids": documents.empty_ids,
        "truncated_ids": truncated_ids,
        "max_source_length": max_length,
        "skipped_files": [s.path for s in documents.skipped],
        "seconds": round(result.seconds, 3),
        "summaries_per_second": round(result.summaries_per_second, 3),
        "device": str(device),
    }
    _log_report(report)
    record = {
        **report,
        "run": None if cfg.run is None else str(Path(cfg.run).resolve()),
        "prompt": dataclasses.asdict(prompt),
        "generation": {
            "generate": dict(settings.generate),  # plain: GenerationSettings converts it
            "first_sentence": settings.first_sentence,
        },
        "versions": library_versions(),
        "hardware": hardware(),
        "git_commit": git_commit(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    write_json(Path(cfg.paths.output_dir) / PREDICTION_RECORD, record)
    return report


def _log_report(report: dict[str, Any]) -> None:
    log.info(
        "wrote %d rows to %s (%d generated in %.1f s, %.2f summaries/s on %s)",
        report["rows"],
        report["output"],
        report["generated"],
        report["seconds"],
        report["summaries_per_second"],
        report["device"],
    )
    if report["empty_text_ids"]:
        ids = report["empty_text_ids"]
        log.warning("%d empty text(s) got an empty summary: %s", len(ids), some(ids))
    if report["truncated_ids"]:
        ids = report["truncated_ids"]
        log.warning(
            "%d text(s) truncated to %d tokens: %s",
            len(ids),
            report["max_source_length"],
            some(ids),
        )


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="predict")
def main(cfg: DictConfig) -> None:
    try:
        run_prediction(cfg)
    except (InputError, WriteFailed) as error:
        print(f"kosum-predict: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
