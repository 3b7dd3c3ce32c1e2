"""`kosum-predict` and the batched generator behind it.

Fast tests use run directories laid out exactly as `kosum-train` leaves them (base_model/,
adapter/, resolved_config.yaml) but built directly from a tiny random T5 with perturbed adapter
weights, so they take a second instead of a training run. The slow round trip trains the real
smoke experiment and runs the real console script on competition-style input.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from peft import LoraConfig, PeftModel, PrefixTuningConfig, TaskType, get_peft_model
from transformers import T5ForConditionalGeneration

from kosum.cli.predict import (
    load_for_prediction,
    prediction_settings,
    resolve_device,
    resolve_max_source_length,
    run_prediction,
)
from kosum.cli.predict import merged as merged_model
from kosum.data.aihub import AihubSource
from kosum.data.synthetic import generate_corpus
from kosum.errors import InputError
from kosum.generation import GenerationSettings
from kosum.inference.batched import generate_summaries
from kosum.inference.inputs import read_inputs
from kosum.inference.t5_fast import CrossAttentionKeepingCache
from kosum.io import read_jsonl
from kosum.models.tokenizer_training import train_bpe_tokenizer
from kosum.models.trained import load_trained
from kosum.text.sentences import first_sentence
from tiny_models import tiny_t5

SHARED_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "competition_sample.csv"
# The pad token (also the decoder start) is suppressed: an untrained model would emit it and
# decode to nothing. min_length keeps every summary non-empty.
GREEDY = {
    "num_beams": 1,
    "do_sample": False,
    "min_length": 4,
    "max_length": 12,
    "suppress_tokens": [0],
}
MAX_SOURCE_LENGTH = 96


def _corpus_texts(tmp_dir: Path) -> list[str]:
    return [
        e.text for e in AihubSource(generate_corpus(tmp_dir, docs_per_category=3)).load().examples
    ]


def _write_table(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _build_run(run_dir: Path, texts: list[str], method: str) -> Path:
    """A run dir as kosum-train writes it: random base + perturbed LoRA/prefix adapter."""
    tokenizer = train_bpe_tokenizer(texts, vocab_size=400)
    base = tiny_t5(
        len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    base.save_pretrained(run_dir / "base_model")
    tokenizer.save_pretrained(run_dir / "base_model")
    adapter_config = (
        LoraConfig(task_type=TaskType.SEQ_2_SEQ_LM, r=4, lora_alpha=8, target_modules=["q", "v"])
        if method == "lora"
        else PrefixTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=4)
    )
    model = get_peft_model(base, adapter_config)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # LoRA B starts at zero: move every adapter weight so it matters
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.5 * torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(run_dir / "adapter")
    tokenizer.save_pretrained(run_dir / "adapter")
    OmegaConf.save(
        {
            "prompt": {"template": "요약: {text}", "apply_at": "both"},
            "generation": {
                "_target_": "kosum.generation.GenerationSettings",
                "generate": GREEDY,
                "first_sentence": False,
            },
            "data": {"max_source_length": MAX_SOURCE_LENGTH},
        },
        run_dir / "resolved_config.yaml",
    )
    return run_dir


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return _corpus_texts(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory: pytest.TempPathFactory, texts: list[str]) -> Path:
    return _build_run(tmp_path_factory.mktemp("lora"), texts, "lora")


@pytest.fixture(scope="module")
def prefix_run(tmp_path_factory: pytest.TempPathFactory, texts: list[str]) -> Path:
    return _build_run(tmp_path_factory.mktemp("prefix"), texts, "prefix")


@pytest.fixture
def input_csv(tmp_path: Path, texts: list[str]) -> Path:
    rows = [[f"doc-{i:02d}", text] for i, text in enumerate(texts[:10])]
    return _write_table(tmp_path / "input.csv", ["id", "text"], rows)


@pytest.fixture
def predict(compose_train: Callable, tmp_path: Path) -> Callable[..., dict]:
    """Run `run_prediction` in-process on the composed `conf/predict.yaml`."""

    def _predict(*overrides: str) -> dict:
        cfg = compose_train(
            tmp_path / "predict-run", *overrides, "progress=false", config_name="predict"
        )
        return run_prediction(cfg)

    return _predict


def _read_submission(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    raw.decode("utf-8")  # strict: valid UTF-8
    assert raw.startswith(b"id,summary\n")
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


# -- inputs ---------------------------------------------------------------------------------
def test_read_inputs_keeps_every_row_and_normalises(tmp_path: Path):
    path = tmp_path / "in.csv"
    path.write_bytes('\ufeffid,text\r\nb," 본문\n  둘째 줄 "\r\na,\r\nc,\u200b \r\n'.encode())
    documents = read_inputs(path)
    assert documents.ids == ["b", "a", "c"]
    assert documents.texts == ["본문 둘째 줄", "", ""]
    assert documents.empty_ids == ["a", "c"]

    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"id": 7, "text": "하나"}\n\n{"id": "x", "text": null}\n', encoding="utf-8")
    documents = read_inputs(jsonl)
    assert documents.ids == ["7", "x"] and documents.texts == ["하나", ""]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,body\n1,본문\n", "missing column(s) ['text']; columns found: ['id', 'body']"),
        ("id,text\n1,가\n2,나\n1,다\n3,라\n2,마\n", "2 duplicate id(s)"),
        ("id,text\n1,가\n,나\n", "empty 'id' on line(s) 3"),
        ("id,text\n1,가,추가\n", "input.csv:2: expected 2 fields"),
        ("id,text\n", "no rows"),
    ],
)
def test_read_inputs_rejects_ambiguous_input(tmp_path: Path, content: str, message: str):
    path = tmp_path / "input.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as error:
        read_inputs(path)
    assert message in str(error.value)
    if "duplicate" in message:
        assert "'1' (lines [2, 4])" in str(error.value) and "'2' (lines [3, 6])" in str(error.value)


def test_read_inputs_names_the_problem_with_the_file(tmp_path: Path):
    with pytest.raises(InputError, match=r"input not found: .*missing\.csv"):
        read_inputs(tmp_path / "missing.csv")
    (tmp_path / "in.txt").write_text("id,text\n1,가\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"in.txt: unsupported input \(expected .csv, .jsonl"):
        read_inputs(tmp_path / "in.txt")
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"id": 1, "text": "가"}\n{"id": 2, "text": \n', encoding="utf-8")
    with pytest.raises(InputError, match=r"in.jsonl:2: "):
        read_inputs(jsonl)
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(InputError, match="empty_folder"):
        read_inputs(tmp_path / "empty_folder")


def test_read_inputs_aihub_zip_and_single_file(tmp_path: Path):
    corpus = generate_corpus(tmp_path / "corpus", docs_per_category=2, categories=["news_r"])
    files = sorted(corpus.rglob("*.json"))
    expected = {
        json.loads(f.read_text(encoding="utf-8"))["Meta(Refine)"]["passage_id"] for f in files
    }
    archive = shutil.make_archive(str(tmp_path / "corpus"), "zip", corpus)
    assert set(read_inputs(archive).ids) == expected
    single = read_inputs(files[0])
    assert single.ids == [
        json.loads(files[0].read_text(encoding="utf-8"))["Meta(Refine)"]["passage_id"]
    ]
    assert single.texts[0]


def test_read_inputs_aihub_folder(shared_data: Path):
    folder = shared_data / "aihub582_sample"
    documents = read_inputs(folder)
    assert sorted(documents.ids) == sorted(p.stem for p in folder.rglob("*.json"))
    assert not documents.skipped and not documents.empty_ids


def test_read_inputs_aihub_keeps_every_document_with_an_id(tmp_path: Path):
    """A test set has no reference summaries: a document without `Annotation` or with an empty
    `summary1` is still a row to summarise; one with an empty passage keeps its row (empty, as
    in a table), and so does one of an unknown category. Training skips all four, counted."""
    corpus = generate_corpus(tmp_path / "corpus", docs_per_category=6, categories=["news_r"])
    files = sorted(corpus.rglob("*.json"))
    documents_json = [json.loads(path.read_text(encoding="utf-8")) for path in files[:3]]
    del documents_json[0]["Annotation"]
    documents_json[1]["Annotation"]["summary1"] = ""
    documents_json[2]["Meta(Refine)"]["passage"] = " "
    for path, document in zip(files, documents_json, strict=False):
        path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    files[3].rename(files[3].with_name(files[3].name.replace("news_r", "blog")))
    no_refine = json.loads(files[4].read_text(encoding="utf-8"))
    del no_refine["Meta(Refine)"]  # no passage, no passage id: the file name is the id
    files[4].write_text(json.dumps(no_refine, ensure_ascii=False), encoding="utf-8")

    documents = read_inputs(corpus)
    assert len(documents.ids) == len(files) and not documents.skipped
    passage_id = documents_json[2]["Meta(Refine)"]["passage_id"]
    assert sorted(documents.empty_ids) == sorted([passage_id, files[4].stem])
    training = AihubSource(corpus).load()
    assert len(training.examples) == len(files) - 5 and len(training.skipped) == 5


# -- batched generation ----------------------------------------------------------------------
def test_batched_equals_one_at_a_time_greedy(lora_run: Path, texts: list[str]):
    model, tokenizer = load_trained(lora_run)
    settings = GenerationSettings(generate=GREEDY)
    sample = texts[:8]
    one = generate_summaries(model, tokenizer, sample, settings, batch_size=1, max_source_length=64)
    batched = generate_summaries(
        model, tokenizer, sample, settings, batch_size=5, max_source_length=64
    )
    unsorted = generate_summaries(
        model,
        tokenizer,
        sample,
        settings,
        batch_size=12,
        max_source_length=64,
        sort_by_length=False,
    )
    padded_encoder = generate_summaries(
        model,
        tokenizer,
        sample,
        settings,
        batch_size=5,
        max_source_length=64,
        encode_one_by_one=False,
    )
    assert batched.summaries == one.summaries == unsorted.summaries == padded_encoder.summaries
    assert all(one.summaries)
    assert len({s for s in one.summaries}) > 1  # the inputs really change the outputs
    assert [b.size for b in batched.batches] == [5, 3]
    # input_tokens: the full lengths, before truncation; every corpus passage is longer than
    # 64 tokens, so all are truncated, and counted
    assert batched.input_tokens == [len(ids) for ids in tokenizer(sample)["input_ids"]]
    assert min(batched.input_tokens) > 64
    assert batched.truncated == list(range(len(sample))) and batched.truncated_count == 8


def test_encoder_side_processors_see_the_inputs(lora_run: Path, texts: list[str]):
    """The encoder runs before generate() (one text at a time on CPU); processors that read the
    encoder's input ids must still get them, as in the seed's loop."""
    model, tokenizer = load_trained(lora_run)
    settings = GenerationSettings(generate={**GREEDY, "encoder_no_repeat_ngram_size": 1})
    sample = texts[:4]
    batched = generate_summaries(model, tokenizer, sample, settings, 4, max_source_length=64)
    expected = []
    for text in sample:
        inputs = tokenizer([text], return_tensors="pt", truncation=True, max_length=64)
        sequences = model.generate(**inputs, **settings.generate)
        expected.append(tokenizer.decode(sequences[0], skip_special_tokens=True).strip())
    assert batched.summaries == expected
    plain = GenerationSettings(generate=GREEDY)
    assert generate_summaries(model, tokenizer, sample, plain, 4, 64).summaries != expected


@pytest.mark.parametrize("method", ["lora", "prefix"])
@pytest.mark.parametrize(
    "decoding",
    [
        {"num_beams": 4, "do_sample": False, "early_stopping": True},
        {"num_beams": 8, "do_sample": True, "min_length": 4},  # the seed preset's kind
    ],
    ids=["beam4", "beam8_sample"],
)
def test_generation_speedups_are_exact(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    decoding: dict,
    texts: list[str],
):
    model, tokenizer = load_trained(request.getfixturevalue(f"{method}_run"))
    settings = GenerationSettings(generate={**decoding, "max_length": 10, "suppress_tokens": [0]})
    reorders = []
    stock_reorder = CrossAttentionKeepingCache.reorder_cache

    def counting_reorder(self: CrossAttentionKeepingCache, beam_idx: torch.LongTensor) -> None:
        reorders.append(beam_idx.shape)
        stock_reorder(self, beam_idx)

    monkeypatch.setattr(CrossAttentionKeepingCache, "reorder_cache", counting_reorder)
    outputs = []
    # kosum's T5 path (LoRA only), then the cache fix alone, then stock transformers; all with
    # stock sampling (kosum's Gumbel sampler draws other values: tests/test_beam_sampling.py)
    for fast, keep in ((True, True), (False, True), (False, False)):
        torch.manual_seed(3)
        outputs.append(
            generate_summaries(
                model,
                tokenizer,
                texts[:6],
                settings,
                batch_size=3,
                max_source_length=64,
                fast_t5=fast,
                keep_cross_attention=keep,
                gumbel_sampling=False,
            ).summaries
        )
    assert outputs[0] == outputs[1] == outputs[2]
    # LoRA decodes with the fixed cache; PEFT prefix tuning swaps in its own prefix cache
    assert bool(reorders) == (method == "lora")


# -- kosum-predict ---------------------------------------------------------------------------
def test_predict_uses_the_runs_prompt_unless_overridden(
    compose_train: Callable, tmp_path: Path, lora_run: Path
):
    common = [f"run={lora_run}", "input=x.csv", "output=y.csv"]
    cfg = compose_train(tmp_path / "a", *common, config_name="predict")
    prompt, settings, _ = prediction_settings(cfg)
    assert prompt.format("본문", "inference") == "요약: 본문"
    assert settings.generate == GREEDY
    cfg = compose_train(
        tmp_path / "b", *common, "prompt=none", "generation=seed", config_name="predict"
    )
    prompt, settings, _ = prediction_settings(cfg)
    assert prompt.format("본문", "inference") == "본문"
    assert settings.generate["num_beams"] == 8 and settings.first_sentence


def test_predict_keeps_empty_rows_and_reports_truncation(
    predict: Callable, lora_run: Path, tmp_path: Path, texts: list[str]
):
    rows = [["z", texts[0]], ["empty", " "], ["a", "짧은 글이다."], ["m", texts[1]]]
    source = _write_table(tmp_path / "in.csv", ["id", "text"], rows)
    output, timings = tmp_path / "out" / "submission.csv", tmp_path / "timings.jsonl"
    report = predict(f"run={lora_run}", f"input={source}", f"output={output}", f"timings={timings}")
    submission = _read_submission(output)
    assert [r["id"] for r in submission] == ["z", "empty", "a", "m"]
    assert submission[1]["summary"] == "" and all(
        r["summary"] for r in submission if r["id"] != "empty"
    )
    assert report["empty_text_ids"] == ["empty"]
    assert report["max_source_length"] == MAX_SOURCE_LENGTH  # from the run's data config
    assert report["truncated_ids"] == ["z", "m"]  # corpus passages are longer than 96 tokens
    timing = read_jsonl(timings)
    assert [t["id"] for t in timing] == ["z", "empty", "a", "m"]
    assert timing[1] == {"id": "empty", "empty": True}
    assert timing[0]["truncated"] and not timing[2]["truncated"] and timing[2]["batch_seconds"] > 0

    # Each row is the seed's loop on its own text: the run's prompt, truncated to the run's
    # max_source_length, stock generate() with the run's decoding.
    model, tokenizer = load_trained(lora_run)
    for row in submission:
        if row["id"] == "empty":
            continue
        text = dict(rows)[row["id"]]
        inputs = tokenizer(
            [f"요약: {text}"], return_tensors="pt", truncation=True, max_length=MAX_SOURCE_LENGTH
        )
        with torch.no_grad():
            sequences = model.generate(**inputs, **GREEDY)
        assert row["summary"] == tokenizer.decode(sequences[0], skip_special_tokens=True).strip()

    record = json.loads((tmp_path / "predict-run" / "prediction.json").read_text("utf-8"))
    assert record["rows"] == 4 and record["generated"] == 3
    assert record["run"] == str(lora_run.resolve())
    assert record["prompt"]["template"] == "요약: {text}"
    assert record["generation"]["generate"] == GREEDY


def test_merge_gives_the_same_outputs_for_lora_and_is_refused_for_prefix(
    predict: Callable,
    compose_train: Callable,
    lora_run: Path,
    prefix_run: Path,
    input_csv: Path,
    tmp_path: Path,
):
    plain, merged = tmp_path / "plain.csv", tmp_path / "merged.csv"
    predict(f"run={lora_run}", f"input={input_csv}", f"output={plain}")
    predict(f"run={lora_run}", f"input={input_csv}", f"output={merged}", "merge=true")
    assert _read_submission(merged) == _read_submission(plain)
    # merging really happened: a plain T5 whose weights carry the LoRA delta
    cfg = compose_train(
        tmp_path / "load",
        f"run={lora_run}",
        "input=x",
        "output=y",
        "merge=true",
        config_name="predict",
    )
    model, _ = load_for_prediction(cfg)
    assert not isinstance(model, PeftModel)
    assert not any("lora_" in name for name, _ in model.named_parameters())
    base = T5ForConditionalGeneration.from_pretrained(lora_run / "base_model")
    query = "encoder.block.0.layer.0.SelfAttention.q.weight"
    assert not torch.equal(model.state_dict()[query], base.state_dict()[query])
    with pytest.raises(InputError, match="no adapter to merge"):
        merged_model(base)
    refused = "ia3, adalora, vera, loha, lokr, oft adapters only; this adapter is prefix_tuning"
    with pytest.raises(InputError, match=refused):
        predict(
            f"run={prefix_run}", f"input={input_csv}", f"output={tmp_path / 'p.csv'}", "merge=true"
        )
    assert not (tmp_path / "p.csv").exists()


def test_predict_refuses_ambiguous_model_choice(
    predict: Callable, lora_run: Path, input_csv: Path, tmp_path: Path
):
    output = f"output={tmp_path / 'o.csv'}"
    with pytest.raises(InputError, match="exactly one of run="):
        predict(f"input={input_csv}", output, "prompt=none", "generation=greedy")
    with pytest.raises(InputError, match="exactly one of run="):
        predict(f"run={lora_run}", "model=lcw99_t5_large", f"input={input_csv}", output)
    with pytest.raises(InputError, match="no-such-run"):
        predict(
            f"run={tmp_path / 'no-such-run'}",
            f"input={input_csv}",
            output,
            "prompt=none",
            "generation=greedy",
        )
    run = f"run={lora_run}"
    with pytest.raises(InputError, match="no such run directory"):
        predict(f"run={tmp_path / 'no-such-run'}", f"input={input_csv}", output)
    for option, message in (
        ("batch_size=0", "batch_size=0: must be an integer >= 1"),
        ("batch_size=abc", "batch_size='abc': must be an integer >= 1"),
        ("merge=maybe", "merge='maybe': use true or false"),
        ("device=gpu", "device='gpu': use auto, cpu, cuda or cuda:<index>"),
        ("+generation.generate.num_beam=4", r"unknown generate\(\) argument\(s\) \['num_beam'\]"),
    ):
        with pytest.raises(InputError, match=message):
            predict(run, f"input={input_csv}", output, option)
    assert not (tmp_path / "o.csv").exists()
    before = input_csv.read_bytes()
    for paths, message in (
        ([f"output={input_csv}"], "is the input file; write elsewhere"),
        ([f"output={tmp_path}"], "is a folder; give a file path"),
        ([f"output={input_csv}/o.csv"], f"cannot be written \\({input_csv} is not a folder"),
        ([output, f"timings={tmp_path / 'o.csv'}"], "output and timings are the same file"),
    ):
        with pytest.raises(InputError, match=message):
            predict(run, f"input={input_csv}", *paths)
    assert input_csv.read_bytes() == before and not (tmp_path / "o.csv").exists()
    with pytest.raises(InputError, match="random-init"):
        predict(
            "model=tiny_t5",
            f"input={input_csv}",
            f"output={tmp_path / 'o.csv'}",
            "prompt=none",
            "generation=greedy",
        )


def test_max_source_length_and_device_resolution(
    compose_train: Callable, lora_run: Path, tmp_path: Path
):
    _, tokenizer = load_trained(lora_run)
    run = [f"run={lora_run}", "input=x.csv", "output=y.csv"]
    cfg = compose_train(tmp_path / "a", *run, config_name="predict")
    trained = OmegaConf.load(lora_run / "resolved_config.yaml")
    assert resolve_max_source_length(cfg, trained, tokenizer) == MAX_SOURCE_LENGTH
    chosen = compose_train(tmp_path / "b", *run, "max_source_length=50", config_name="predict")
    assert resolve_max_source_length(chosen, trained, tokenizer) == 50
    # no run setting: the tokenizer's own limit, unless it is transformers' "unset" (~1e30)
    tokenizer.model_max_length = 512
    assert resolve_max_source_length(cfg, None, tokenizer) == 512
    tokenizer.model_max_length = int(1e30)
    assert resolve_max_source_length(cfg, None, tokenizer) == 1024

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="device=cuda:0: no CUDA device is available"):
            resolve_device("cuda:0")


def test_sampled_prediction_is_reproducible_and_keeps_the_first_sentence(
    predict: Callable, lora_run: Path, texts: list[str], tmp_path: Path
):
    """The seed preset through kosum-predict: same seed, same file; another seed, other draws;
    each summary is the first sentence of what was drawn."""
    source = _write_table(
        tmp_path / "in.csv", ["id", "text"], [[f"d{i}", text] for i, text in enumerate(texts[:4])]
    )
    _, tokenizer = load_trained(lora_run)
    period, space = tokenizer.convert_tokens_to_ids([".", "Ġ"])
    outputs = {}
    for name, seed, first_only in (
        ("a", 1, True),
        ("b", 1, True),
        ("c", 2, True),
        ("raw", 1, False),
    ):
        outputs[name] = tmp_path / f"{name}.csv"
        predict(
            f"run={lora_run}",
            f"input={source}",
            f"output={outputs[name]}",
            "generation=seed",
            "generation.generate.max_length=24",
            "+generation.generate.suppress_tokens=[0]",
            # an untrained model rarely ends a sentence: make periods likely
            f"+generation.generate.sequence_bias=[[[{period}],1.0],[[{period},{space}],8.0]]",
            f"generation.first_sentence={first_only}",
            f"seed={seed}",
        )
    first, again, other, raw = (
        [r["summary"] for r in _read_submission(outputs[name])] for name in ("a", "b", "c", "raw")
    )
    assert first == again and first != other
    # the same draws, post-processed: the first sentence of each sampled summary
    assert first == [first_sentence(summary) for summary in raw]
    assert any(first_sentence(summary) != summary for summary in raw)  # some had a second one


def test_input_of_empty_texts_only(predict: Callable, lora_run: Path, tmp_path: Path):
    source = _write_table(tmp_path / "in.csv", ["id", "text"], [["a", " "], ["b", ""]])
    output = tmp_path / "out.csv"
    report = predict(f"run={lora_run}", f"input={source}", f"output={output}")
    assert _read_submission(output) == [{"id": "a", "summary": ""}, {"id": "b", "summary": ""}]
    assert report["generated"] == 0 and report["empty_text_ids"] == ["a", "b"]


def test_cli_bad_input_exits_2_without_traceback(run_cli: Callable, lora_run: Path, tmp_path: Path):
    source = _write_table(tmp_path / "in.csv", ["id", "body"], [["1", "본문"]])
    output = tmp_path / "out.csv"
    result = run_cli(
        "kosum.cli.predict",
        f"run={lora_run}",
        f"input={source}",
        f"output={output}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "missing column(s) ['text']; columns found: ['id', 'body']" in result.stderr
    assert "Traceback" not in result.stderr
    assert not output.exists()


@pytest.mark.slow
def test_round_trip_smoke_training_then_predict(run_cli: Callable, tmp_path: Path):
    """The real smoke training run, then the real console script on competition-style input."""
    if not SHARED_CSV.is_file():
        pytest.skip(
            f"real data not found at {SHARED_CSV} (it exists on kosum's machines and CI only)"
        )
    run_dir = tmp_path / "train"
    result = run_cli("kosum.cli.train", "experiment=smoke", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    with SHARED_CSV.open(encoding="utf-8", newline="") as handle:
        rows = [[row["id"], row["text"]] for row in list(csv.DictReader(handle))[:24]]
    source = _write_table(tmp_path / "test.csv", ["id", "text"], rows)

    outputs = {}
    for batch_size in (1, 16):
        output = tmp_path / f"submission-{batch_size}.csv"
        result = run_cli(
            "kosum.cli.predict",
            f"run={run_dir}",
            f"input={source}",
            f"output={output}",
            "generation=greedy",
            "generation.generate.min_length=5",
            "+generation.generate.suppress_tokens=[0]",
            f"batch_size={batch_size}",
            f"timings={tmp_path / 'timings.jsonl'}",
            f"hydra.run.dir={tmp_path / f'predict-{batch_size}'}",
        )
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[batch_size] = _read_submission(output)
    submission = outputs[16]
    assert [r["id"] for r in submission] == [row[0] for row in rows]
    assert all(r["summary"].strip() for r in submission)
    assert outputs[1] == submission
    assert len(read_jsonl(tmp_path / "timings.jsonl")) == len(rows)
    # how the submission was made, beside the prediction run's .hydra/
    record = json.loads((tmp_path / "predict-16" / "prediction.json").read_text(encoding="utf-8"))
    assert record["run"] == str(run_dir.resolve()) and record["rows"] == len(rows)
    assert record["generation"]["generate"]["suppress_tokens"] == [0]
    assert record["prompt"]["template"] and record["config"]["batch_size"] == 16
    assert record["versions"]["torch"] and "git_commit" in record
    assert (
        json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["status"] == "completed"
    )
