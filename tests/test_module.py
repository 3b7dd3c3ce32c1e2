"""`SummarizationModule`'s evaluation numbers do not depend on how the split is batched."""

from __future__ import annotations

import torch

from kosum.generation import GenerationSettings
from kosum.models.tokenizer_training import train_bpe_tokenizer
from kosum.training.module import SummarizationModule
from tiny_models import tiny_t5

VOCAB = 40


def _batch(rows: range, labels: torch.Tensor, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        "input_ids": inputs[rows.start : rows.stop],
        "attention_mask": torch.ones_like(inputs[rows.start : rows.stop]),
        "labels": labels[rows.start : rows.stop],
        "index": torch.tensor(list(rows)),
    }


def test_eval_loss_is_the_per_token_mean_whatever_the_batch_size():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randint(2, VOCAB, (5, 7), generator=generator)
    labels = torch.randint(2, VOCAB, (5, 6), generator=generator)
    labels[4, 1:] = -100  # a short summary in the last, short batch
    tokenizer = train_bpe_tokenizer(["요약할 문서와 요약문의 예시입니다."] * 4, vocab_size=300)
    model = tiny_t5(len(tokenizer)).eval()
    with torch.no_grad():
        expected = model(input_ids=inputs, labels=labels).loss  # mean over all label tokens
    greedy = GenerationSettings(generate={"num_beams": 1, "max_length": 3})
    for batch_size in (5, 2):  # one batch; or 2 + 2 + a last batch of one
        module = SummarizationModule(
            model, tokenizer, optimizer=None, scheduler=None, generation=greedy
        )
        for start in range(0, 5, batch_size):
            rows = range(start, min(start + batch_size, 5))
            with torch.no_grad():
                module._eval_step("val", _batch(rows, labels, inputs))
        assert torch.isclose(torch.tensor(module.eval_outputs["val"].mean_loss()), expected)


def test_gen_len_counts_generated_tokens_not_retokenised_text():
    """Re-tokenising decoded text counts a byte-level token that decodes to U+FFFD as several;
    gen_len is the generated tokens themselves (start, end and padding not counted)."""
    tokenizer = train_bpe_tokenizer(["요약할 문서와 요약문의 예시입니다."] * 4, vocab_size=300)
    model = tiny_t5(len(tokenizer)).eval()
    inputs = torch.randint(2, len(tokenizer), (3, 7), generator=torch.Generator().manual_seed(0))
    greedy = GenerationSettings(generate={"num_beams": 1, "max_length": 6})
    module = SummarizationModule(
        model, tokenizer, optimizer=None, scheduler=None, generation=greedy
    )
    with torch.no_grad():
        predictions, generated = module.generate_batch(
            {"input_ids": inputs, "attention_mask": torch.ones_like(inputs)}
        )
        sequences = model.generate(input_ids=inputs, num_beams=1, max_length=6)
    special = set(tokenizer.all_special_ids)
    expected = sum(token not in special for token in sequences.flatten().tolist())
    assert sum(generated) == expected and 0 < sum(generated) <= 3 * 5  # max_length - 1 per row
    retokenised = sum(len(tokenizer.tokenize(text)) for text in predictions)
    assert retokenised != generated  # what gen_len used to report
