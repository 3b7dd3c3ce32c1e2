"""The LightningModule that trains any adaptation method and evaluates it by generation.

It holds a model already adapted by `kosum.methods.factory.apply_method` and never asks which
method that was: the optimiser sees only trainable parameters, checkpoints keep only trainable
weights, and validation/test generate summaries and score them with Korean ROUGE.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase, get_scheduler

from kosum.data.batching import LABEL_PAD
from kosum.errors import TrainingDiverged
from kosum.generation import GenerationSettings
from kosum.inference.batched import fast_generation, generate_ids
from kosum.inference.patching import generation_model
from kosum.methods.base import Method
from kosum.metrics import compute_rouge
from kosum.training.optimizers import build_optimizer
from kosum.training.run_identity import CHECKPOINT_KEY

log = logging.getLogger(__name__)
# `_score` logs the same values on every rank (scored from the gathered split), so Lightning's
# advice to sync epoch-level metrics across devices does not apply to them.
warnings.filterwarnings(
    "ignore", message=r"It is recommended to use `self\.log\('(val|test)/", category=UserWarning
)

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
# What the validation before training keeps (results.json: start_val_rougeL, start_val_loss).
START_VAL_METRICS = ("rougeL", "loss")
START_VAL_KEY = "kosum_start_val"  # its checkpoint entry


@dataclass
class SchedulerSettings:
    """`conf/scheduler/*.yaml`: a transformers schedule name and its warmup."""

    name: str = "linear"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0


@dataclass
class TrainingSpeed:
    """Training steps timed from one step's start to the next's (a span that crosses a
    validation or an epoch's end is not counted), and the real tokens they trained on."""

    steps: int = 0
    seconds: float = 0.0
    tokens: int = 0

    def record(self) -> dict[str, float | None]:
        """results.json's `time_per_step_s` and `tokens_per_s` (None before two steps)."""
        timed = self.steps and self.seconds > 0
        return {
            "time_per_step_s": self.seconds / self.steps if timed else None,
            "tokens_per_s": self.tokens / self.seconds if timed else None,
        }


@dataclass
class EvalOutputs:
    """What one evaluation pass produced, per example, keyed by its dataset index: the summary
    after post-processing, the tokens generated for it (special ones not counted, before
    post-processing) and, with labels, its teacher-forced loss summed over its label tokens and
    their count. Kept per example so that the split's mean loss does not depend on how it was
    batched (a mean of batch means would weight a short last batch as a full one), and so that
    the shares of a distributed evaluation merge into the single-process result, an example
    that distributed padding repeated counted once."""

    predictions: dict[int, str] = field(default_factory=dict)
    generated_tokens: dict[int, int] = field(default_factory=dict)
    losses: dict[int, tuple[float, int]] = field(default_factory=dict)

    @classmethod
    def merged(cls, shares: list[EvalOutputs]) -> EvalOutputs:
        """One pass from the ranks' shares; an index seen twice keeps its first entry."""
        merged = cls()
        for share in shares:
            for mine, theirs in (
                (merged.predictions, share.predictions),
                (merged.generated_tokens, share.generated_tokens),
                (merged.losses, share.losses),
            ):
                for index, value in theirs.items():
                    mine.setdefault(index, value)
        return merged

    def sorted_by_index(self) -> tuple[list[int], list[str]]:
        indices = sorted(self.predictions)
        return indices, [self.predictions[i] for i in indices]

    def gen_len(self) -> float:
        return sum(self.generated_tokens.values()) / max(len(self.generated_tokens), 1)

    def mean_loss(self) -> float | None:
        """The loss per label token over the split (summed in index order); None without labels."""
        tokens = sum(count for _, count in self.losses.values())
        if not tokens:
            return None
        return sum(self.losses[i][0] for i in sorted(self.losses)) / tokens


class SummarizationModule(L.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        optimizer: Callable[..., torch.optim.Optimizer] | None,
        scheduler: SchedulerSettings | None,
        generation: GenerationSettings,
        run_identity: dict[str, Any] | None = None,
        method: Method | None = None,
        val_generation: GenerationSettings | None = None,
        label_smoothing: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.model = model
        # The method's training hooks (AdaLoRA's rank reallocation); None: no hooks.
        self.method = method
        self.run_identity = run_identity
        self.tokenizer = tokenizer
        self.optimizer_factory = optimizer
        self.scheduler_settings = scheduler
        # Test decoding, and validation's unless `val_generation` sets a cheaper one (greedy
        # while training, the seed's 8 beams + sampling for the test).
        self.generation = generation
        self.val_generation = val_generation or generation
        self.label_smoothing = label_smoothing
        self.seed = seed  # with the examples' positions, seeds sampling (GenerationSettings.seeded)
        # Checkpoints hold trainable weights only; the frozen base comes from the base model.
        self.strict_loading = False
        self.eval_outputs: dict[str, EvalOutputs] = {}
        self.last_eval_metrics: dict[str, dict[str, Any]] = {}
        # Validation of the untrained model (`validate_before_training`), kept in checkpoints so
        # a resumed run still reports where it started.
        self.start_val_metrics: dict[str, float] = {}
        self._step_started: float | None = None
        self.training_speed = TrainingSpeed()
        self._warned: set[str] = set()  # splits already warned about empty predictions
        self._hooked_step = 0  # the optimiser steps the method's hook has been called after

    # -- training -----------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        # `from_pretrained` returns a model in eval mode and Lightning keeps each module's mode:
        # without this, a pretrained base (lcw99's T5) would be adapted with its dropout off,
        # unlike the seed (and transformers' Trainer), which trains in train mode.
        self.model.train()
        if self.method is not None:
            self.method.on_train_start(self.model, int(self.trainer.estimated_stepping_batches))

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # After the batch's optimiser step, if it took one (not while accumulating); Lightning
        # zeroes the gradients only inside the next step, so they are still there.
        if self.method is not None and self.trainer.global_step != self._hooked_step:
            self._hooked_step = self.trainer.global_step
            self.method.after_optimizer_step(self.model, self.trainer.global_step - 1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.training_loss(batch)
        if not torch.isfinite(loss):  # before backward: no step is taken on it
            raise self._diverged(float(loss))
        real_tokens = int(batch["attention_mask"].sum() + (batch["labels"] != LABEL_PAD).sum())
        now = time.perf_counter()
        if self._step_started is not None:
            seconds = now - self._step_started
            self.log("train/tokens_per_s", real_tokens / max(seconds, 1e-9))
            self.training_speed.steps += 1
            self.training_speed.seconds += seconds
            self.training_speed.tokens += real_tokens
        self._step_started = now
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        return loss

    def _diverged(self, loss: float) -> TrainingDiverged:
        trainer = self.trainer
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        causes = f"a learning rate too high (it is {lr:g} now; optim.lr=)"
        if str(trainer.precision) != "32-true":
            causes += f", or the precision ({trainer.precision}; trainer.precision=32-true)"
        return TrainingDiverged(
            f"the training loss is {loss} at optimiser step {trainer.global_step + 1} (epoch "
            f"{trainer.current_epoch}): the run stops here. Likely cause: {causes}; "
            "trainer.detect_anomaly=true names the operation that produced it"
        )

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The model's loss, its cross-entropy smoothed with `label_smoothing` when set."""
        outputs = self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        )
        if not self.label_smoothing:
            return outputs.loss
        # The model's loss may hold a method's own terms (AdaLoRA's orthogonality penalty):
        # only its cross-entropy is replaced by the smoothed one.
        logits, labels = outputs.logits.flatten(0, 1).float(), batch["labels"].flatten()
        plain = torch.nn.functional.cross_entropy(logits, labels, ignore_index=LABEL_PAD)
        smoothed = torch.nn.functional.cross_entropy(
            logits, labels, ignore_index=LABEL_PAD, label_smoothing=self.label_smoothing
        )
        return outputs.loss - plain + smoothed

    def configure_optimizers(self) -> dict[str, Any]:
        if self.optimizer_factory is None or self.scheduler_settings is None:
            raise RuntimeError("this module was built for evaluation only (no optimizer)")
        optimizer = build_optimizer(self.optimizer_factory, self.model)
        total_steps = int(self.trainer.estimated_stepping_batches)
        settings = self.scheduler_settings
        warmup = settings.warmup_steps or int((settings.warmup_ratio or 0.0) * total_steps)
        scheduler = get_scheduler(settings.name, optimizer, warmup, total_steps)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trainable = {
            f"model.{name}" for name, p in self.model.named_parameters() if p.requires_grad
        }
        checkpoint["state_dict"] = {
            key: value for key, value in checkpoint["state_dict"].items() if key in trainable
        }
        if self.run_identity is not None:  # compared by a resume (kosum.training.run_identity)
            checkpoint[CHECKPOINT_KEY] = self.run_identity
        # Dropout draws from the global generator: a resumed run must continue its sequence,
        # under DDP each process its own (this hook runs on every rank; rank 0 writes).
        checkpoint["kosum_rng"] = _rng_state()
        checkpoint[START_VAL_KEY] = self.start_val_metrics
        if self.trainer.world_size > 1:
            by_rank: list[dict[str, torch.Tensor] | None] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(by_rank, checkpoint["kosum_rng"])
            checkpoint["kosum_rng"]["by_rank"] = by_rank

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.start_val_metrics = dict(checkpoint.get(START_VAL_KEY) or self.start_val_metrics)
        rng = checkpoint.get("kosum_rng", {})
        by_rank = rng.get("by_rank") or []
        if len(by_rank) == self.trainer.world_size > 1:
            rng = by_rank[self.trainer.global_rank]
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"])

    def keep_start_metrics(self) -> None:
        """Keep the last validation's scores as the run's starting point (call it after
        validating the untrained model)."""
        scores = self.last_eval_metrics.get("val", {})
        self.start_val_metrics = {k: float(scores[k]) for k in START_VAL_METRICS if k in scores}

    # -- evaluation ---------------------------------------------------------------------------
    @torch.inference_mode()
    def generate_batch(
        self, batch: dict[str, torch.Tensor], settings: GenerationSettings | None = None
    ) -> tuple[list[str], list[int]]:
        """The batch's post-processed summaries (decoded with `settings`, by default the test's)
        and how many tokens were generated for each (special tokens aside)."""
        settings = settings or self.generation
        inputs = {key: batch[key] for key in ("input_ids", "attention_mask")}
        positions = batch["index"].tolist() if "index" in batch else []
        with (
            fast_generation(self.model, settings) as fast,
            settings.seeded(self.seed, positions),
        ):
            sequences = generate_ids(self.model, inputs, settings, fast=fast)
        special = torch.tensor(self.tokenizer.all_special_ids, device=sequences.device)
        generated = (~torch.isin(sequences, special)).sum(dim=1).tolist()
        texts = self.tokenizer.batch_decode(sequences, skip_special_tokens=True)
        return [settings.postprocess(text) for text in texts], generated

    def _eval_step(self, split: str, batch: dict[str, torch.Tensor]) -> None:
        outputs = self.eval_outputs.setdefault(split, EvalOutputs())
        indices = batch["index"].tolist()
        if "labels" in batch:
            losses = self._summed_token_losses(batch)
            tokens = (batch["labels"] != LABEL_PAD).sum(dim=1).tolist()
            outputs.losses.update(zip(indices, zip(losses, tokens, strict=True), strict=True))
        settings = self.val_generation if split == "val" else self.generation
        predictions, generated = self.generate_batch(batch, settings)
        outputs.predictions.update(zip(indices, predictions, strict=True))
        outputs.generated_tokens.update(zip(indices, generated, strict=True))

    def _summed_token_losses(self, batch: dict[str, torch.Tensor]) -> list[float]:
        """Each example's cross-entropy summed over its label tokens under teacher forcing.
        Computed here, not taken from the model's `loss`: a method may add its own terms to that
        (AdaLoRA adds an orthogonality penalty), which would make `val/loss` and `loss`
        incomparable between methods."""
        labels = batch["labels"]
        decoder_input_ids = generation_model(self.model).prepare_decoder_input_ids_from_labels(
            labels
        )
        logits = self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            decoder_input_ids=decoder_input_ids,
        ).logits
        losses = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1).float(),
            labels.flatten(),
            ignore_index=LABEL_PAD,
            reduction="none",
        )
        return losses.view_as(labels).sum(dim=1).tolist()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_train_epoch_start(self) -> None:
        self._step_started = None  # throughput is timed between training steps only

    def on_validation_epoch_start(self) -> None:
        self.eval_outputs.pop("val", None)
        self._step_started = None  # the next training step's span would include validation

    def on_test_epoch_start(self) -> None:
        self.eval_outputs.pop("test", None)

    def on_validation_epoch_end(self) -> None:
        self._score("val")

    def on_test_epoch_end(self) -> None:
        self._score("test")

    def _score(self, split: str) -> None:
        outputs = self.eval_outputs.get(split)
        if outputs is None:
            return
        if self.trainer.world_size > 1:  # every rank scores the whole split, identically
            outputs = self.eval_outputs[split] = gather_eval_outputs(outputs)
        dataset = self.trainer.datamodule.splits[split]
        indices, predictions = outputs.sorted_by_index()
        references = [dataset.references[i] for i in indices]
        metrics = compute_rouge(predictions, references)
        if predictions and not any(p.strip() for p in predictions) and split not in self._warned:
            self._warned.add(split)  # once per split: validation runs every epoch
            log.warning(
                "every %s prediction is empty: the model generates nothing but special tokens "
                "(a barely trained model predicts padding), so ROUGE is 0; "
                "generation.generate.min_length and suppress_tokens force text (experiment=smoke)",
                split,
            )
        self.last_eval_metrics[split] = {
            **{k: metrics[k] for k in ROUGE_KEYS},
            "gen_len": outputs.gen_len(),
        }
        if (loss := outputs.mean_loss()) is not None:
            self.last_eval_metrics[split]["loss"] = loss
        for key, value in self.last_eval_metrics[split].items():
            # The same value on every rank (computed from the gathered split): nothing to sync.
            self.log(f"{split}/{key}", float(value), prog_bar=key == "rougeL")


def _rng_state() -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def gather_eval_outputs(outputs: EvalOutputs) -> EvalOutputs:
    """Every rank's share of a distributed evaluation, merged (a collective: all ranks call it)."""
    shares: list[EvalOutputs | None] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(shares, outputs)
    return EvalOutputs.merged([share for share in shares if share is not None])
