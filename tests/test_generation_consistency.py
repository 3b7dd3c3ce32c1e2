"""``generate()`` must compute what the teacher-forced forward computes, for every PEFT method.

Each scored token of a generation is checked against the logits of one teacher-forced forward
pass over the generated sequence (``decoder_input_ids = [start] + generated[:-1]``). On
transformers 5.2x + peft 0.21 this fails for prefix tuning unless
:func:`kosum.methods.prefix_generation.enable_prefix_generation` is applied: ``generate()`` then
silently decodes with the base model (see ``docs/methods-prefix-generation.md``).

The model is a tiny randomly initialised T5; every trainable adapter parameter is pushed away from
its initialisation (LoRA B is zero at init, IA3 vectors are ones) so that each adapter really
changes the outputs.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from peft import (
    AdaLoraConfig,
    IA3Config,
    LoHaConfig,
    LoKrConfig,
    LoraConfig,
    OFTConfig,
    PeftConfig,
    PrefixTuningConfig,
    PromptTuningConfig,
    TaskType,
    VeraConfig,
    get_peft_model,
)
from transformers import T5Config, T5ForConditionalGeneration
from transformers.utils import ModelOutput

from kosum.generation import GenerationSettings
from kosum.inference.batched import fast_generation, generate_ids
from kosum.methods.factory import apply_method, load_adapter
from kosum.methods.prefix_encdec import PrefixEncDecConfig
from kosum.methods.prefix_generation import enable_prefix_generation
from tiny_models import loss_and_gradients

NUM_VIRTUAL_TOKENS = 8
MAX_NEW_TOKENS = 8
ATOL = 1e-4
# Three inputs of different lengths, right-padded with the pad id 0; 1 is EOS.
INPUT_IDS = torch.tensor(
    [
        [5, 6, 7, 8, 9, 10, 11, 1],
        [12, 13, 14, 15, 1, 0, 0, 0],
        [20, 21, 1, 0, 0, 0, 0, 0],
    ]
)
ATTENTION_MASK = (INPUT_IDS != 0).long()

# kosum's prefix_encdec in every non-empty combination of its places, and with its MLP.
ENCDEC_METHODS: dict[str, PrefixEncDecConfig] = {
    "prefix_encdec_" + "+".join(where): PrefixEncDecConfig(
        num_virtual_tokens=NUM_VIRTUAL_TOKENS, where=list(where)
    )
    for size in (1, 2, 3)
    for where in itertools.combinations(("encoder", "decoder", "cross"), size)
}
ENCDEC_METHODS["prefix_encdec_projection"] = PrefixEncDecConfig(
    num_virtual_tokens=NUM_VIRTUAL_TOKENS, prefix_projection=True, encoder_hidden_size=32
)

# Weight-adapter methods of conf/peft/ beyond LoRA and IA3, with their YAMLs' settings.
_SEQ2SEQ = TaskType.SEQ_2_SEQ_LM
ADAPTER_METHODS: dict[str, PeftConfig] = {
    "dora": LoraConfig(
        task_type=_SEQ2SEQ, r=8, lora_alpha=32, target_modules=["q", "v"], use_dora=True
    ),
    "rslora": LoraConfig(
        task_type=_SEQ2SEQ, r=8, lora_alpha=32, target_modules=["q", "v"], use_rslora=True
    ),
    "lora_ffn": LoraConfig(
        task_type=_SEQ2SEQ, r=8, lora_alpha=32, target_modules=["wi", "wi_0", "wi_1", "wo"]
    ),
    "vera": VeraConfig(task_type=_SEQ2SEQ, r=256, target_modules=["q", "v"]),
    "loha": LoHaConfig(task_type=_SEQ2SEQ, r=8, alpha=8, target_modules=["q", "v"]),
    "lokr": LoKrConfig(task_type=_SEQ2SEQ, r=8, alpha=8, target_modules=["q", "v"]),
    "oft": OFTConfig(task_type=_SEQ2SEQ, oft_block_size=32, target_modules=["q", "v"]),
    "adalora": AdaLoraConfig(
        task_type=_SEQ2SEQ,
        init_r=12,
        target_r=8,
        lora_alpha=32,
        target_modules=["q", "v"],
        total_step=1,
    ),
}

METHODS: dict[str, PeftConfig | PrefixEncDecConfig | None] = {
    "base": None,
    "lora": LoraConfig(
        task_type=TaskType.SEQ_2_SEQ_LM, r=8, lora_alpha=32, target_modules=["q", "v"]
    ),
    "prefix": PrefixTuningConfig(
        task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=NUM_VIRTUAL_TOKENS
    ),
    "prefix_projection": PrefixTuningConfig(
        task_type=TaskType.SEQ_2_SEQ_LM,
        num_virtual_tokens=NUM_VIRTUAL_TOKENS,
        prefix_projection=True,
        encoder_hidden_size=32,
    ),
    "prompt": PromptTuningConfig(
        task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=NUM_VIRTUAL_TOKENS
    ),
    "ia3": IA3Config(task_type=TaskType.SEQ_2_SEQ_LM),
    **ENCDEC_METHODS,
    **ADAPTER_METHODS,
}
# PEFT's prefix tuning, which needs `enable_prefix_generation`.
PREFIX_METHODS = ["prefix", "prefix_projection"]
# Every prefix method: the prefix must change generation and survive save/reload.
ALL_PREFIX_METHODS = [*PREFIX_METHODS, *ENCDEC_METHODS]
# kosum's T5 path (kosum.inference.t5_fast) covers these; prompt learning keeps the stock path.
FAST_PATH_METHODS = ["base", "lora", "ia3", *ADAPTER_METHODS]


def _build_base() -> T5ForConditionalGeneration:
    """Tiny float64 T5, identical on every call.

    float64 keeps the rounding differences between a cached decoding step and the batched
    teacher-forced pass far below the 1e-4 tolerance, so the tests check the computation, not the
    arithmetic. The larger init keeps greedy decoding from collapsing onto one token, and a shifted
    EOS embedding (tied to the LM head) makes some beams finish early, so scores of different
    lengths are checked.
    """
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=300,
        d_model=64,
        d_kv=16,  # d_model / num_heads: PEFT's prefix shapes assume it
        d_ff=128,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        dropout_rate=0.0,
        initializer_factor=3.0,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    model = T5ForConditionalGeneration(config).double().eval()
    with torch.no_grad():
        eos_row = model.shared.weight[config.eos_token_id]
        noise = torch.randn(eos_row.shape, generator=torch.Generator().manual_seed(5))
        eos_row += 4.0 * model.shared.weight.std() * noise
    return model


def _build(method: str) -> torch.nn.Module:
    """The model for ``method``, adapter weights perturbed with a fixed seed, generation enabled."""
    spec = METHODS[method]
    if spec is None:
        model: torch.nn.Module = _build_base()
    else:
        model = apply_method(_build_base(), copy.deepcopy(spec)).double()
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for param in model.parameters():
                if param.requires_grad:
                    param.add_(torch.randn(param.shape, generator=generator))
    return enable_prefix_generation(model.eval())


@pytest.fixture(scope="module", autouse=True)
def _single_thread() -> Iterator[None]:
    """The tensors are tiny: intra-op threads only add overhead, badly so on a busy 2-core box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=list(METHODS))
def method_model(request: pytest.FixtureRequest) -> torch.nn.Module:
    return _build(request.param)


def _generate(model: torch.nn.Module, fast: bool = False, **kwargs: object) -> ModelOutput:
    """`model.generate()`, or with `fast`, kosum's T5 path (`kosum.inference.t5_fast`), which
    must compute the same (it falls back to this very call for prompt-learning methods)."""
    options = {"max_new_tokens": MAX_NEW_TOKENS, "return_dict_in_generate": True, **kwargs}
    inputs = {"input_ids": INPUT_IDS, "attention_mask": ATTENTION_MASK}
    with torch.no_grad():
        if not fast:
            return model.generate(**inputs, **options)
        settings = GenerationSettings(generate=options)
        with fast_generation(model, settings) as active:
            return generate_ids(model, inputs, settings, fast=active)


def _teacher_forced_logits(model: torch.nn.Module, sequences: torch.Tensor) -> torch.Tensor:
    """Logits for every generated position of ``sequences``, in float32 like ``generate``'s."""
    repeats = sequences.shape[0] // INPUT_IDS.shape[0]
    with torch.no_grad():
        logits = model(
            input_ids=INPUT_IDS.repeat_interleave(repeats, dim=0),
            attention_mask=ATTENTION_MASK.repeat_interleave(repeats, dim=0),
            decoder_input_ids=sequences[:, :-1],
        ).logits
    return logits.float()


def _assert_steps_match_teacher_forcing(model: torch.nn.Module, out: ModelOutput) -> None:
    """Every step's raw logits equal the teacher-forced logits of the generated sequence.

    Steps after EOS are forced to pad, but their logits are still computed from the same inputs.
    """
    expected = _teacher_forced_logits(model, out.sequences)
    torch.testing.assert_close(torch.stack(out.logits, dim=1), expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("fast", [False, True], ids=["stock", "kosum_fast"])
@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "no_cache"])
@pytest.mark.parametrize("do_sample", [False, True], ids=["greedy", "sample"])
def test_step_logits_match_teacher_forcing(
    method_model: torch.nn.Module, do_sample: bool, use_cache: bool, fast: bool
) -> None:
    torch.manual_seed(2)
    out = _generate(
        method_model, fast, do_sample=do_sample, use_cache=use_cache, output_logits=True
    )
    _assert_steps_match_teacher_forcing(method_model, out)


@pytest.mark.parametrize("fast", [False, True], ids=["stock", "kosum_fast"])
@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "no_cache"])
@pytest.mark.parametrize("do_sample", [False, True], ids=["beam", "beam_sample"])
def test_beam_scores_match_teacher_forcing(
    method_model: torch.nn.Module, do_sample: bool, use_cache: bool, fast: bool
) -> None:
    torch.manual_seed(3)
    out = _generate(
        method_model,
        fast,
        num_beams=4,
        num_return_sequences=2,
        length_penalty=1.0,
        do_sample=do_sample,
        top_k=0,  # keep the processed scores equal to the log-probabilities
        use_cache=use_cache,
        output_scores=True,
    )
    transition = method_model.compute_transition_scores(
        out.sequences, out.scores, out.beam_indices, normalize_logits=False
    )
    generated = out.sequences[:, 1:]
    scored = out.beam_indices[:, : generated.shape[1]] != -1
    log_probs = _teacher_forced_logits(method_model, out.sequences).log_softmax(dim=-1)
    token_log_probs = log_probs.gather(-1, generated[..., None]).squeeze(-1)
    expected_sum = (token_log_probs * scored).sum(dim=-1)

    torch.testing.assert_close(transition.sum(dim=-1), expected_sum, atol=ATOL, rtol=0)
    # length_penalty=1.0: the sequence score is the sum divided by the number of scored tokens.
    lengths = scored.sum(dim=-1).to(expected_sum.dtype)
    torch.testing.assert_close(out.sequences_scores * lengths, expected_sum, atol=ATOL, rtol=0)


@pytest.mark.parametrize("method", list(METHODS))
def test_kosum_fast_variant_runs_kosums_path_where_it_applies(method: str) -> None:
    """The `kosum_fast` cases above test kosum's T5 path, not a silent fallback to stock."""
    settings = GenerationSettings(generate={"max_new_tokens": MAX_NEW_TOKENS})
    with fast_generation(_build(method), settings) as active:
        assert active == (method in FAST_PATH_METHODS)


@pytest.mark.parametrize("method", ALL_PREFIX_METHODS)
def test_prefix_changes_generation(method: str) -> None:
    """The prefix is really used: the adapted generation differs from the adapter-disabled one."""
    model = _build(method)
    adapted = _generate(model, output_logits=True)
    with model.disable_adapter():
        disabled = _generate(model, output_logits=True)
    assert not torch.equal(adapted.sequences, disabled.sequences)
    assert (adapted.logits[0] - disabled.logits[0]).abs().max() > 1e-2


@pytest.mark.parametrize("method", ["lora", "ia3", *ADAPTER_METHODS])
def test_weight_adapter_changes_generation(method: str) -> None:
    """The agreement above is not vacuous: each weight adapter, moved off its initialisation,
    changes the logits (OFT's rotations, VeRA's scalings, AdaLoRA's E included)."""
    model = _build(method)
    adapted = _generate(model, output_logits=True)
    with model.disable_adapter():
        disabled = _generate(model, output_logits=True)
    assert (adapted.logits[0] - disabled.logits[0]).abs().max() > 1e-2


@pytest.mark.parametrize("method", ALL_PREFIX_METHODS)
def test_prefix_use_cache_false_equals_use_cache_true(method: str) -> None:
    model = _build(method)
    cached = _generate(model, output_logits=True, use_cache=True)
    uncached = _generate(model, output_logits=True, use_cache=False)
    torch.testing.assert_close(uncached.sequences, cached.sequences, atol=0, rtol=0)
    torch.testing.assert_close(
        torch.stack(uncached.logits, dim=1), torch.stack(cached.logits, dim=1), atol=ATOL, rtol=0
    )


def test_prefix_user_decoder_attention_mask() -> None:
    """A 2-D decoder mask passed to ``generate`` is widened over the prefix positions."""
    model = _build("prefix")
    reference = _generate(model, output_logits=True)
    masked = _generate(
        model,
        output_logits=True,
        decoder_attention_mask=torch.ones(INPUT_IDS.shape[0], 1, dtype=torch.long),
    )
    _assert_steps_match_teacher_forcing(model, masked)
    torch.testing.assert_close(masked.sequences, reference.sequences, atol=0, rtol=0)


@pytest.mark.parametrize("method", ALL_PREFIX_METHODS)
def test_prefix_save_reload_round_trip(method: str, tmp_path: Path) -> None:
    model = _build(method)
    expected = _generate(model, output_logits=True)
    model.save_pretrained(tmp_path)

    reloaded = load_adapter(tmp_path, _build_base()).double().eval()
    actual = _generate(reloaded, output_logits=True)
    _assert_steps_match_teacher_forcing(reloaded, actual)
    torch.testing.assert_close(actual.sequences, expected.sequences, atol=0, rtol=0)
    torch.testing.assert_close(
        torch.stack(actual.logits, dim=1), torch.stack(expected.logits, dim=1), atol=ATOL, rtol=0
    )


def test_training_forward_unchanged() -> None:
    """Teacher forcing with labels gives the same loss and prefix gradients after enabling."""
    labels = torch.tensor([[30, 31, 1], [32, 1, -100], [33, 34, 1]])

    def loss_and_grads(model: torch.nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return loss_and_gradients(
            model, input_ids=INPUT_IDS, attention_mask=ATTENTION_MASK, labels=labels
        )

    plain = get_peft_model(_build_base(), copy.deepcopy(METHODS["prefix"]))
    enabled = enable_prefix_generation(copy.deepcopy(plain))
    plain_loss, plain_grads = loss_and_grads(plain)
    enabled_loss, enabled_grads = loss_and_grads(enabled)
    torch.testing.assert_close(enabled_loss, plain_loss)
    assert any(grad.abs().sum() > 0 for grad in enabled_grads)
    for got, want in zip(enabled_grads, plain_grads, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("method", list(METHODS))
def test_enable_is_idempotent_and_targeted(method: str) -> None:
    model = _build(method)  # already enabled once
    patched = model.__dict__.get("prepare_inputs_for_generation")
    assert enable_prefix_generation(model) is model
    assert model.__dict__.get("prepare_inputs_for_generation") is patched
    assert (patched is not None) == (method in PREFIX_METHODS)


def test_deepcopy_keeps_the_fix_on_the_copy() -> None:
    model = _build("prefix")
    clone = copy.deepcopy(model)
    assert clone.prepare_inputs_for_generation.model is clone
    expected = _generate(model).sequences
    torch.testing.assert_close(_generate(clone).sequences, expected, atol=0, rtol=0)
