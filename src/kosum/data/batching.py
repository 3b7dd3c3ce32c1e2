"""Batches without wasted padding: dynamic padding and length-grouped batch order.

Padding to the seed's fixed 1024/128 left ~45% of source and ~76% of label positions as padding
on news data (docs/performance.md); padding each batch to its own longest member, and putting
documents of similar length together, removes most of it. `pad_to_max_length=True` restores the
seed's fixed padding for comparison.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from kosum.errors import InputError

LABEL_PAD = -100  # ignored by the cross-entropy loss


class Seq2SeqCollator:
    """Pad `input_ids` with the pad id and `labels` with -100, to the batch max or a fixed size.

    The attention mask marks each row's real tokens by length, not by comparing with the pad id:
    a tokenizer whose pad token is also its `</s>` (a common workaround) would otherwise hide
    every end-of-sequence token from the encoder.
    """

    def __init__(
        self,
        pad_token_id: int,
        fixed_source_length: int | None = None,
        fixed_target_length: int | None = None,
    ) -> None:
        self.pad_token_id = pad_token_id
        self.fixed_source_length = fixed_source_length
        self.fixed_target_length = fixed_target_length

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        sources = [r["input_ids"] for r in rows]
        input_ids, attention_mask = _pad(sources, self.pad_token_id, self.fixed_source_length)
        batch: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "index": torch.tensor([r["index"] for r in rows], dtype=torch.long),
        }
        if all(len(r["labels"]) > 0 for r in rows):
            batch["labels"], _ = _pad(
                [r["labels"] for r in rows], LABEL_PAD, self.fixed_target_length
            )
        return batch


def _pad(
    sequences: Sequence[Sequence[int]], value: int, fixed: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(padded ids, mask of real tokens), `fixed` wide or as wide as the longest sequence."""
    width = fixed or max(len(s) for s in sequences)
    out = torch.full((len(sequences), width), value, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        out[row, : len(sequence)] = torch.as_tensor(sequence, dtype=torch.long)
        mask[row, : len(sequence)] = 1
    return out, mask


# Bumped whenever the training batch order for a given (seed, epoch) changes (2: seeded with the
# pair, 1: with seed + epoch); checkpoints record it, so a mid-epoch resume knows whether the
# batches it skips are the ones the interrupted run trained on.
BATCH_ORDER_VERSION = 2


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of similar-length examples.

    Training (`shuffle=True`): each epoch shuffles with the pair (seed, epoch), cuts the order into
    windows of `batch_size * window_batches`, sorts each window by length, cuts it into batches
    and shuffles the batches; the order is a pure function of (seed, epoch), so a resumed run
    sees the same batches. Evaluation (`shuffle=False`): longest first, so generation pads little
    and a too-large batch fails at once rather than at the end.

    Lightning calls `set_epoch` on `dataloader.sampler` and `dataloader.batch_sampler.sampler`,
    never on the batch sampler itself, so this class is its own `sampler`: without that every
    epoch would repeat epoch 0's order.

    Distributed (`num_replicas` > 1, one sampler per rank): every rank computes the same global
    list of batches and takes every `num_replicas`-th from `rank` on, so the ranks' shares are
    disjoint and together the single-process epoch, batch for batch (an evaluated example sits
    in the same batch, padded as in one process, so it is generated and scored identically).
    When the batches do not divide evenly, the list is completed from its start, as
    `DistributedSampler` does: every rank steps the same number of times (DDP's collectives
    need it) and the repeated examples are dropped by index where predictions are gathered.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        window_batches: int = 50,
        group_by_length: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not one of {num_replicas} replicas")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.window = batch_size * window_batches
        self.group_by_length = group_by_length
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self._resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, batches_done: int) -> None:
        """Skip the first `batches_done` batches of `epoch` (once; of this rank's share): a
        resumed run continues mid-epoch with exactly the batches the interrupted run had not
        trained on yet."""
        self._resume = (epoch, batches_done)

    @property
    def sampler(self) -> LengthGroupedBatchSampler:
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            if not self.group_by_length:
                return np.arange(len(self.lengths))
            return np.argsort(-self.lengths, kind="stable")
        # Seeded with the pair: `seed + epoch` would give seed 2's first epoch seed 1's second.
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        if not self.group_by_length:
            return order
        windows = [order[i : i + self.window] for i in range(0, len(order), self.window)]
        return np.concatenate([w[np.argsort(-self.lengths[w], kind="stable")] for w in windows])

    def __iter__(self) -> Iterator[list[int]]:
        order = self._order()
        size = self.batch_size
        batches = [order[i : i + size].tolist() for i in range(0, len(order), size)]
        if self.shuffle and self.group_by_length:
            rng = np.random.default_rng([self.seed, self.epoch, 1])
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.num_replicas > 1 and batches:
            padded = len(self) * self.num_replicas
            batches = [batches[i % len(batches)] for i in range(padded)][
                self.rank :: self.num_replicas
            ]
        if self._resume is not None and self._resume[0] == self.epoch:
            batches = batches[self._resume[1] :]
            self._resume = None
        return iter(batches)

    def __len__(self) -> int:
        """This rank's batches per epoch."""
        batches = (len(self.lengths) + self.batch_size - 1) // self.batch_size
        return -(-batches // self.num_replicas)
