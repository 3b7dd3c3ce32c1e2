"""`peft=prefix_encdec`: Li & Liang prefix tuning for T5 in the encoder, the decoder and
cross-attention, checked against a direct computation, place by place, and end to end."""

from __future__ import annotations

import copy
import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import BartConfig, BartForConditionalGeneration
from transformers.models.t5.modeling_t5 import T5Attention

from kosum.errors import ConfigError, InputError
from kosum.methods.factory import apply_method, load_adapter, method_of_model, parameter_counts
from kosum.methods.prefix_encdec import PrefixEncDecConfig
from kosum.methods.prefix_encdec.attention import SLOT
from kosum.methods.prefix_encdec.model import attention_modules
from kosum.training.fast_dropout import enable_fast_cpu_dropout
from tiny_models import loss_and_gradients, tiny_t5

VOCAB = 64
TOKENS = 3
ALL_PLACES = ["encoder", "decoder", "cross"]
INPUT_IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 1], [11, 12, 13, 1, 0, 0, 0]])
ATTENTION_MASK = (INPUT_IDS != 0).long()
DECODER_INPUT_IDS = torch.tensor([[0, 20, 21, 22, 23], [0, 24, 25, 26, 27]])


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _base(attention: str = "sdpa", **overrides) -> nn.Module:
    model = tiny_t5(VOCAB, **overrides).double().eval()
    model.set_attn_implementation(attention)
    return model


def _prefixed(where: list[str], attention: str = "sdpa", **settings) -> nn.Module:
    """A float64 prefixed tiny T5 whose prefixes are seeded random values."""
    method = PrefixEncDecConfig(num_virtual_tokens=TOKENS, where=where, **settings)
    model = apply_method(_base(attention), method).double().eval()
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return model


def _logits(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(
            input_ids=INPUT_IDS,
            attention_mask=ATTENTION_MASK,
            decoder_input_ids=DECODER_INPUT_IDS,
        ).logits


# -- the attention computation, against a direct one -------------------------------------------
def _direct_attention(
    module: T5Attention,
    hidden: torch.Tensor,
    source: torch.Tensor,
    prefix: torch.Tensor,
    bias: torch.Tensor,
    blocked: torch.Tensor,
) -> torch.Tensor:
    """softmax(q·[prefix keys; keys]ᵀ + [0; bias] + mask)·[prefix values; values], projected:
    T5 attention (no 1/√d scaling) written out, with the prefix at zero bias, always visible.
    `prefix` is (2, heads, tokens, d_kv); `blocked` is True where a query may not see a key."""
    batch, heads, width = hidden.shape[0], module.n_heads, module.key_value_proj_dim

    def split(states: torch.Tensor) -> torch.Tensor:
        return states.view(batch, -1, heads, width).transpose(1, 2)

    query, key, value = split(module.q(hidden)), split(module.k(source)), split(module.v(source))
    tokens = prefix.shape[2]
    key = torch.cat((prefix[0].expand(batch, -1, -1, -1), key), dim=2)
    value = torch.cat((prefix[1].expand(batch, -1, -1, -1), value), dim=2)
    scores = query @ key.transpose(2, 3)
    scores = scores + nn.functional.pad(bias, (tokens, 0))
    blocked = nn.functional.pad(blocked, (tokens, 0), value=False)
    scores = scores.masked_fill(blocked, float("-inf"))
    output = scores.softmax(dim=-1) @ value
    return module.o(output.transpose(1, 2).reshape(batch, hidden.shape[1], heads * width))


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_each_prefixed_attention_layer_equals_a_direct_computation(attention: str):
    model = _prefixed(ALL_PLACES, attention)
    base = model.get_base_model()
    seen: dict[int, tuple] = {}

    def keep(module, args, kwargs, output):
        source = kwargs.get("key_value_states")
        seen[id(module)] = (args[0], args[0] if source is None else source, output[0])

    handles = [
        module.register_forward_hook(keep, with_kwargs=True)
        for place in ALL_PLACES
        for module in attention_modules(base, place)
    ]
    _logits(model)
    for handle in handles:
        handle.remove()

    source_length, target_length = INPUT_IDS.shape[1], DECODER_INPUT_IDS.shape[1]
    padding = (ATTENTION_MASK == 0)[:, None, None, :]
    causal = torch.ones(target_length, target_length, dtype=torch.bool).triu(1)[None, None]
    with torch.no_grad():
        encoder_bias = (
            base.encoder.block[0].layer[0].SelfAttention.compute_bias(source_length, source_length)
        )
        decoder_bias = (
            base.decoder.block[0].layer[0].SelfAttention.compute_bias(target_length, target_length)
        )
        cases = {
            "encoder": (encoder_bias, padding),
            "decoder": (decoder_bias, causal),
            "cross": (torch.zeros(1, 1, target_length, source_length).double(), padding),
        }
        checked = 0
        for place, (bias, blocked) in cases.items():
            table = model.prefixes[place].full()
            for layer, module in enumerate(attention_modules(base, place)):
                hidden, source, output = seen[id(module)]
                expected = _direct_attention(module, hidden, source, table[layer], bias, blocked)
                torch.testing.assert_close(output, expected, atol=1e-5, rtol=0)
                checked += 1
    assert checked == 3 * 2  # three places, two layers each


# -- where the prefix acts ----------------------------------------------------------------------
def _encoder_output(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.get_encoder()(
            input_ids=INPUT_IDS, attention_mask=ATTENTION_MASK
        ).last_hidden_state


def test_where_decides_which_outputs_change():
    base = _base()
    base_encoder, base_logits = _encoder_output(base), _logits(base)

    encoder_only = _prefixed(["encoder"])
    assert (_encoder_output(encoder_only) - base_encoder).abs().max() > 1e-3

    cross_only = _prefixed(["cross"])
    assert torch.equal(_encoder_output(cross_only), base_encoder)
    assert (_logits(cross_only) - base_logits).abs().max() > 1e-3

    decoder_only = _prefixed(["decoder"])
    assert torch.equal(_encoder_output(decoder_only), base_encoder)
    assert (_logits(decoder_only) - base_logits).abs().max() > 1e-3


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_a_disabled_adapter_is_the_base_model_exactly(attention: str):
    model = _prefixed(ALL_PLACES, attention)
    with model.disable_adapter():
        assert torch.equal(_logits(model), _logits(_base(attention)))
    assert not torch.equal(_logits(model), _logits(_base(attention)))


def test_parameter_count_is_places_layers_keys_values_heads_tokens_width():
    model = _prefixed(["encoder", "cross"])
    layers, heads, d_kv = 2, 4, 8  # tiny_t5
    assert parameter_counts(model)["trainable_params"] == 2 * layers * 2 * heads * TOKENS * d_kv
    assert method_of_model(model).name == "prefix_encdec"
    assert not method_of_model(model).fast_t5_generation


# -- training -----------------------------------------------------------------------------------
def test_training_only_an_encoder_prefix_learns_a_task_the_base_gets_wrong():
    """Gradients reach an encoder prefix through the encoder, cross-attention and the decoder:
    a constant answer to random inputs, which the random base cannot give."""
    model = apply_method(
        tiny_t5(VOCAB), PrefixEncDecConfig(num_virtual_tokens=4, where=["encoder"])
    )
    inputs = torch.randint(3, VOCAB, (16, 12), generator=torch.Generator().manual_seed(1))
    labels = torch.full((16, 4), 7)
    labels[:, -1] = 1
    with torch.no_grad(), model.disable_adapter():
        base_loss = model(input_ids=inputs, labels=labels).loss.item()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert [p.shape for p in trainable] == [model.prefixes["encoder"].prefix.shape]
    optimizer = torch.optim.AdamW(trainable, lr=0.1)
    model.train()
    for _ in range(60):
        loss = model(input_ids=inputs, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.6 * base_loss, (base_loss, loss.item())


def _loss_and_gradients(model: nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    labels = DECODER_INPUT_IDS[:, 1:].contiguous()
    return loss_and_gradients(
        model, input_ids=INPUT_IDS, attention_mask=ATTENTION_MASK, labels=labels
    )


@pytest.mark.parametrize("projection", [False, True], ids=["plain", "mlp"])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(projection: bool):
    settings = {"prefix_projection": True, "encoder_hidden_size": 16} if projection else {}
    plain = _prefixed(ALL_PLACES, **settings)
    checkpointed = copy.deepcopy(plain)
    checkpointed.get_base_model().gradient_checkpointing_enable({"use_reentrant": False})
    loss, gradients = _loss_and_gradients(plain)
    checkpointed_loss, checkpointed_gradients = _loss_and_gradients(checkpointed)
    torch.testing.assert_close(checkpointed_loss, loss)
    assert all(gradient.abs().sum() > 0 for gradient in gradients)
    for got, want in zip(checkpointed_gradients, gradients, strict=True):
        torch.testing.assert_close(got, want)


def test_fast_cpu_dropout_keeps_the_prefix():
    """kosum's CPU dropout attention runs inside the prefixed attention, not instead of it."""
    model = _prefixed(ALL_PLACES)
    expected = _logits(model)
    enable_fast_cpu_dropout(model)
    implementation = model.get_base_model().config._attn_implementation
    assert implementation == "kosum_prefix+kosum_fast_dropout"
    torch.testing.assert_close(_logits(model), expected, atol=1e-12, rtol=0)


def test_fast_cpu_dropout_trains_through_the_prefix(monkeypatch: pytest.MonkeyPatch):
    """In training, kosum's CPU dropout attention (its own math path) gets the prefixed keys,
    mask and bias: with every dropout mask at its expectation the output is the eval output."""
    import kosum.training.fast_dropout as fast_dropout

    method = PrefixEncDecConfig(num_virtual_tokens=TOKENS)
    model = apply_method(_base(dropout_rate=0.1), method).double()
    expected = _logits(model.eval())
    enable_fast_cpu_dropout(model)
    monkeypatch.setattr(
        fast_dropout, "keep_mask", lambda shape, keep, dtype: torch.full(shape, keep, dtype=dtype)
    )
    model.train()
    torch.testing.assert_close(_logits(model), expected, atol=1e-10, rtol=0)


def test_bf16_weights_and_autocast_run():
    model = _prefixed(ALL_PLACES).float()
    expected = _logits(model.double()).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = _logits(model.float())
    assert autocast.isfinite().all()
    assert (autocast.float() - expected).abs().max() < 0.1 * expected.abs().max()
    bf16 = _logits(model.to(torch.bfloat16))
    assert bf16.dtype == torch.bfloat16 and bf16.isfinite().all()


# -- the MLP, real-token initialisation, saving -------------------------------------------------
def test_the_projection_is_folded_into_the_saved_adapter(tmp_path: Path):
    model = _prefixed(ALL_PLACES, prefix_projection=True, encoder_hidden_size=16)
    trained_parameters = parameter_counts(model)["trainable_params"]
    model.save_pretrained(tmp_path)
    reloaded = load_adapter(tmp_path, _base()).double().eval()
    assert not any(table.mlp for table in reloaded.prefixes.values())
    assert parameter_counts(reloaded)["trainable_params"] < trained_parameters
    torch.testing.assert_close(_logits(reloaded), _logits(model), atol=1e-6, rtol=0)
    record = json.loads((tmp_path / "kosum_adapter.json").read_text())
    assert record["trained_with_projection"] is True
    assert record["settings"]["where"] == ALL_PLACES


def test_save_reload_generates_the_same(tmp_path: Path):
    model = _prefixed(["encoder", "cross"])
    model.save_pretrained(tmp_path)
    reloaded = load_adapter(tmp_path, _base()).double().eval()
    assert isinstance(reloaded, type(model))
    options = {"max_new_tokens": 6, "num_beams": 3, "do_sample": False}
    with torch.no_grad():
        expected = model.generate(input_ids=INPUT_IDS, attention_mask=ATTENTION_MASK, **options)
        actual = reloaded.generate(input_ids=INPUT_IDS, attention_mask=ATTENTION_MASK, **options)
    assert torch.equal(actual, expected)


def test_reloading_onto_another_shape_says_so(tmp_path: Path):
    _prefixed(ALL_PLACES).save_pretrained(tmp_path)
    with pytest.raises(InputError, match=r"holds \{.*'encoder\.prefix': \(2, 2, 4, 3, 8\).* need"):
        load_adapter(tmp_path, _base(num_heads=2, d_kv=16))


def test_text_initialisation_takes_the_base_models_keys_and_values(tmp_path: Path):
    """Li & Liang's real-token init: each prefix is what its layer computes for the tokens."""
    from kosum.models.tokenizer_training import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer(["핵심 내용을 간단하게 요약 " * 20], vocab_size=300)
    tokenizer.save_pretrained(tmp_path)
    method = PrefixEncDecConfig(
        num_virtual_tokens=5,
        init="text",
        init_text="핵심 내용",
        tokenizer_name_or_path=str(tmp_path),
    )
    model = apply_method(tiny_t5(len(tokenizer)).eval(), method)
    base = model.get_base_model()
    ids = method._init_token_ids()
    assert len(ids) == 5
    attention = base.encoder.block[0].layer[0]
    cross = base.decoder.block[1].layer[1].EncDecAttention

    def heads(states: torch.Tensor) -> torch.Tensor:
        return states.view(1, 5, 4, 8).transpose(1, 2)[0]

    with torch.no_grad(), model.disable_adapter():
        states = attention.layer_norm(base.shared(torch.tensor([ids])))
        encoded = base.get_encoder()(input_ids=torch.tensor([ids])).last_hidden_state
    # encoder layer 0's keys and values of the tokens; cross-attention's of the encoder output
    torch.testing.assert_close(
        model.prefixes["encoder"].prefix[0, 0], heads(attention.SelfAttention.k(states))
    )
    torch.testing.assert_close(
        model.prefixes["encoder"].prefix[0, 1], heads(attention.SelfAttention.v(states))
    )
    torch.testing.assert_close(model.prefixes["cross"].prefix[1, 0], heads(cross.k(encoded)))
    for place in ALL_PLACES:  # nothing recorded stays behind on the modules
        assert all(getattr(m, SLOT).recorded is None for m in attention_modules(base, place))


def test_a_zero_prefix_is_zero_and_still_not_the_base_model():
    """Zero keys get attention weight exp(0) from every query: real tokens' weights shrink."""
    model = apply_method(_base(), PrefixEncDecConfig(num_virtual_tokens=3, init="zero"))
    assert all(not table.prefix.any() for table in model.prefixes.values())
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        prefixed = model(input_ids=ids, decoder_input_ids=ids).logits
        with model.disable_adapter():
            base = model(input_ids=ids, decoder_input_ids=ids).logits
    assert not torch.allclose(prefixed, base, atol=1e-4)


# -- settings that cannot work ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"where": []}, r"peft.where=\[\]: give a non-empty list"),
        ({"where": ["encoder", "ffn"]}, r"\['ffn'\] unknown"),
        ({"where": ["cross", "cross"]}, "each place once"),
        ({"where": "encoder"}, "give a non-empty list"),
        ({"num_virtual_tokens": 0}, "peft.num_virtual_tokens=0: must be a positive integer"),
        ({"init": "zeros"}, r"peft.init='zeros': one of \['random', 'text', 'zero'\]"),
        ({"init": "text"}, "peft.init=text needs peft.init_text"),
        (
            {"init": "text", "init_text": "요약", "prefix_projection": True},
            "initialises the prefix itself, not the MLP",
        ),
        ({"init": "zero", "prefix_projection": True}, "peft.init=zero with peft.prefix_projection"),
    ],
)
def test_bad_settings_are_one_line_config_errors(settings: dict, message: str):
    with pytest.raises(ConfigError, match=message) as caught:
        PrefixEncDecConfig(**settings).check()
    assert "\n" not in str(caught.value)


def test_a_model_that_is_not_t5_is_refused():
    bart = BartForConditionalGeneration(
        BartConfig(
            vocab_size=VOCAB,
            d_model=16,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=32,
            decoder_ffn_dim=32,
        )
    )
    with pytest.raises(InputError, match=r"needs a T5 model .* the base model is a Bart"):
        apply_method(bart, PrefixEncDecConfig())


# -- the real commands ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [[], ["peft.where=[encoder]"], ["peft.where=[cross]"], ["gradient_checkpointing=true"]],
    ids=["all", "encoder", "cross", "checkpointing"],
)
def test_train_then_eval_and_predict_reproduce_the_run(run_cli, tmp_path: Path, overrides):
    """kosum-train validates by generation and saves the adapter; kosum-eval reloads it and
    gets the run's test metrics and predictions; kosum-predict writes the same summaries."""
    from kosum.io import read_jsonl
    from test_train_e2e import _test_texts

    run_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
    train = [f"hydra.run.dir={run_dir}", "trainer.max_epochs=1", *overrides]
    result = run_cli("kosum.cli.train", "experiment=smoke", "peft=prefix_encdec", *train)
    assert result.returncode == 0, result.stderr[-3000:]
    trained = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert trained["status"] == "completed" and "val_rougeL" in trained["metrics"]
    assert (run_dir / "adapter" / "kosum_adapter.json").is_file()
    saved = json.loads((run_dir / "adapter" / "kosum_adapter.json").read_text())
    where = trained["config"]["peft"]["where"]
    assert saved["settings"]["where"] == where

    result = run_cli("kosum.cli.evaluate", f"run={run_dir}", f"hydra.run.dir={eval_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads((eval_dir / "results.json").read_text(encoding="utf-8"))
    for key in ("rouge1", "rouge2", "rougeL", "loss"):
        assert evaluated["metrics"][key] == trained["metrics"][key], key
    rows = read_jsonl(run_dir / "predictions.jsonl")
    assert read_jsonl(eval_dir / "predictions.jsonl") == rows

    source = tmp_path / "test.jsonl"
    texts = _test_texts(trained, [row["id"] for row in rows])
    source.write_text(
        "".join(
            json.dumps({"id": row["id"], "text": text}, ensure_ascii=False) + "\n"
            for row, text in zip(rows, texts, strict=True)
        ),
        encoding="utf-8",
    )
    output = tmp_path / "submission.csv"
    result = run_cli(
        "kosum.cli.predict",
        f"run={run_dir}",
        f"input={source}",
        f"output={output}",
        f"hydra.run.dir={tmp_path / 'predict'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with output.open(encoding="utf-8", newline="") as handle:
        submitted = {row["id"]: row["summary"] for row in csv.DictReader(handle)}
    assert submitted == {row["id"]: row["prediction"] for row in rows}


def test_reports_label_a_varied_where_briefly():
    from kosum.report.labels import config_label

    label = config_label([("method", "prefix_encdec"), ("peft.where", ("encoder", "cross"))])
    assert label == "prefix_encdec where=encoder+cross"
