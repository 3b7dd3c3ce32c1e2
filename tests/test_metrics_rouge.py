"""Korean ROUGE: hand-counted examples, agreement with rouge-score on real data, evaluate module."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import mecab_ko
import pytest
from rouge_score import rouge_scorer

from kosum.metrics import (
    ROUGE_KEYS,
    KoreanTokenizer,
    compute_rouge,
    corpus_rouge,
    evaluate_module_path,
    rouge_per_example,
    score_pairs,
    split_sentences,
    tokenize_korean,
)

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
COMPETITION_CSV = DATA_DIR / "competition_sample.csv"


@pytest.fixture(scope="module")
def competition_rows() -> list[dict[str, str]]:
    if not COMPETITION_CSV.is_file():
        pytest.skip(f"bundled competition data not found at {COMPETITION_CSV} (not in a clone)")
    with COMPETITION_CSV.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall)


# --- tokenisation -----------------------------------------------------------------------------


def test_rouge_score_default_tokenizer_scores_korean_zero_but_ours_does_not() -> None:
    prediction, reference = "정부는 내년 예산을 늘렸다", "정부는 내년 예산을 크게 늘렸다"
    default = rouge_scorer.RougeScorer(["rouge1", "rougeL"]).score(reference, prediction)
    assert default["rouge1"].fmeasure == 0.0
    assert default["rougeL"].fmeasure == 0.0
    ours = compute_rouge([prediction], [reference])
    assert ours["rouge1"] > 0.8
    assert ours["rougeL"] > 0.8


def test_tokenizer_normalises_then_splits_into_morphemes() -> None:
    # Lowercased; "(", "-", ")" and "!" become spaces; Jamo (ㅋ) and Hanja are dropped.
    assert tokenize_korean("BTS가 빌보드 1위를 차지했다!") == [
        "bts", "가", "빌보드", "1", "위", "를", "차지", "했", "다",
    ]  # fmt: skip
    assert tokenize_korean("코로나19(COVID-19) 확진자") == [
        "코로나", "19", "covid", "19", "확진", "자",
    ]  # fmt: skip
    assert tokenize_korean("ㅋㅋ 中國 서울") == ["서울"]
    assert tokenize_korean("") == []
    assert tokenize_korean("... !!") == []
    # Line by line: a newline separates tokens like a space.
    assert tokenize_korean("Hello,\nWorld") == ["hello", "world"]


def test_tokenizer_plugs_into_rouge_score() -> None:
    scorer = rouge_scorer.RougeScorer(["rouge1"], tokenizer=KoreanTokenizer())
    score = scorer.score("나는 밥을 먹었다", "나는 빵을 먹었다")["rouge1"]
    assert score.fmeasure == pytest.approx(6 / 7)


def test_split_sentences_on_newlines_and_final_punctuation() -> None:
    text = "첫 문장이다. 둘째는? 셋째!  넷째 3.5%\n\n다섯째 …"
    assert split_sentences(text) == ["첫 문장이다.", "둘째는?", "셋째!", "넷째 3.5%", "다섯째 …"]


# --- hand-counted scores ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        pytest.param(
            # pred 나/는/빵/을/먹/었/다, ref 나/는/밥/을/먹/었/다 (7 each).
            # R1: 6 shared -> 6/7. R2: 4 of 6 bigrams shared (나는, 을먹, 먹었, 었다) -> 4/6.
            # LCS 나 는 을 먹 었 다 = 6 -> 6/7; one sentence each, so Lsum = L.
            "나는 빵을 먹었다",
            "나는 밥을 먹었다",
            {"rouge1": 6 / 7, "rouge2": 4 / 6, "rougeL": 6 / 7, "rougeLsum": 6 / 7},
            id="one-morpheme-substitution",
        ),
        pytest.param(
            # pred 고양이 x3 (3), ref 고양이/가/개/를/쫓/는다 (6). Clipped overlap min(3, 1) = 1:
            # P 1/3, R 1/6, F1 2/9. A naive "is the token in the reference" count finds 3
            # matches (P 1, R 1/2, F1 2/3). R2: (고양이,고양이) x2 is not a reference bigram.
            # LCS 1 -> 2/9.
            "고양이 고양이 고양이",
            "고양이가 개를 쫓는다",
            {"rouge1": 2 / 9, "rouge2": 0.0, "rougeL": 2 / 9, "rougeLsum": 2 / 9},
            id="repeated-morpheme-clipped",
        ),
        pytest.param(
            # Same three words reversed: R1 3/3; no bigram in common; LCS 1 of 3.
            "대구 부산 서울",
            "서울 부산 대구",
            {"rouge1": 1.0, "rouge2": 0.0, "rougeL": 1 / 3, "rougeLsum": 1 / 3},
            id="reversed-order",
        ),
        pytest.param(
            # pred the/cat/the/cat (4), ref the/cat/sat/on/the/mat (6).
            # R1: the min(2,2) + cat min(2,1) = 3: P 3/4, R 3/6 -> 0.6.
            # R2: pred {the cat: 2, cat the: 1}, ref {the cat: 1, ...}: 1 -> P 1/3, R 1/5 -> 0.25.
            # LCS "the cat the" = 3 -> 0.6.
            "The cat the cat",
            "the cat sat on the mat.",
            {"rouge1": 0.6, "rouge2": 0.25, "rougeL": 0.6, "rougeLsum": 0.6},
            id="english",
        ),
        pytest.param(
            # pred bts/가/빌보드/1/위/를/차지/했/다 (9), ref bts/빌보드/1/위 (4; "BTS" lowercased).
            # R1: 4 -> P 4/9, R 1 -> 8/13. R2: ref (bts,빌보드)(빌보드,1)(1,위); pred has
            # (빌보드,1)(1,위) of its 8 -> P 2/8, R 2/3 -> 4/11. LCS 4 -> 8/13.
            "BTS가 빌보드 1위를 차지했다",
            "BTS 빌보드 1위",
            {"rouge1": 8 / 13, "rouge2": 4 / 11, "rougeL": 8 / 13, "rougeLsum": 8 / 13},
            id="mixed-korean-english",
        ),
        pytest.param(
            # Sentences swapped. Whole sequences 서울 부산 대구 광주 / 대구 광주 서울 부산:
            # R1 4/4; R2 (서울,부산)(대구,광주) of 3 -> 2/3; LCS 2 of 4 -> 0.5.
            # Lsum: each reference sentence is the LCS with one candidate sentence -> 4/4.
            "대구 광주. 서울 부산",
            "서울 부산.\n대구 광주",
            {"rouge1": 1.0, "rouge2": 2 / 3, "rougeL": 0.5, "rougeLsum": 1.0},
            id="sentence-order-lsum",
        ),
        pytest.param(
            # ref sentences 서울/부산 and 서울/대구, pred one sentence 서울/광주. Both reference
            # sentences' LCS is 서울, but the prediction has one 서울: Lsum hits 1 (not 2):
            # P 1/2, R 1/4 -> 1/3. R1: 서울 min(2,1) = 1 -> same 1/3. LCS 1 -> 1/3.
            "서울 광주",
            "서울 부산. 서울 대구",
            {"rouge1": 1 / 3, "rouge2": 0.0, "rougeL": 1 / 3, "rougeLsum": 1 / 3},
            id="lsum-union-clipped",
        ),
    ],
)
def test_hand_counted_scores(prediction: str, reference: str, expected: dict[str, float]) -> None:
    (scores,) = rouge_per_example([prediction], [reference])
    assert scores == pytest.approx(expected, abs=1e-12)


def test_repeated_morpheme_precision_and_recall() -> None:
    (scores,) = score_pairs(["고양이 고양이 고양이"], ["고양이가 개를 쫓는다"])
    unigram = scores["rouge1"]
    assert (unigram.overlap, unigram.prediction_total, unigram.reference_total) == (1, 3, 6)
    assert unigram.precision == pytest.approx(1 / 3)
    assert unigram.recall == pytest.approx(1 / 6)
    assert unigram.fmeasure == pytest.approx(f1(1 / 3, 1 / 6))


def test_english_matches_rouge_score_default_tokenizer() -> None:
    prediction, reference = "The cat the cat", "the cat sat on the mat."
    default = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"]).score(reference, prediction)
    (ours,) = rouge_per_example([prediction], [reference])
    for key, score in default.items():
        assert ours[key] == pytest.approx(score.fmeasure)


def test_identical_disjoint_and_empty() -> None:
    text = "정부는 내년 예산을 크게 늘렸다."
    identical, disjoint, empty, both_empty, punctuation = rouge_per_example(
        [text, "서울 부산", "", "", "!!!"],
        [text, "대구 광주", "서울 부산", "", "서울 부산"],
    )
    assert identical == dict.fromkeys(ROUGE_KEYS, 1.0)
    assert disjoint == dict.fromkeys(ROUGE_KEYS, 0.0)
    assert empty == dict.fromkeys(ROUGE_KEYS, 0.0)
    # Documented convention: two empty texts score 0.0 (no match, not a perfect one).
    assert both_empty == dict.fromkeys(ROUGE_KEYS, 0.0)
    assert punctuation == dict.fromkeys(ROUGE_KEYS, 0.0)


def test_macro_and_micro_averages_differ_as_defined() -> None:
    predictions, references = ["서울 부산", "서울"], ["서울 부산", "대구 광주 대전 부산"]
    # Macro: mean of per-pair ROUGE-1 F1 (1 and 0). Micro: overlaps 2 + 0 over prediction
    # totals 2 + 1 and reference totals 2 + 4: P 2/3, R 1/3.
    assert compute_rouge(predictions, references)["rouge1"] == pytest.approx(0.5)
    assert corpus_rouge(predictions, references)["rouge1"] == pytest.approx(f1(2 / 3, 1 / 3))


def test_compute_rouge_ci_and_categories() -> None:
    predictions = ["서울 부산", "서울 대구", "대구 광주", "나는 빵을 먹었다", "나는 밥을 먹었다"]
    references = ["서울 부산", "서울 광주", "부산 대전", "나는 밥을 먹었다", "나는 밥을 먹었다"]
    categories = ["news", "news", None, "edit", "edit"]
    result = compute_rouge(predictions, references, categories=categories, n_resamples=200, seed=3)
    per_example = rouge_per_example(predictions, references)
    assert result["n"] == 5
    for key in ROUGE_KEYS:
        assert result[key] == pytest.approx(sum(row[key] for row in per_example) / 5)
        low, high = result["ci95"][key]
        assert low <= result[key] <= high
    by_category = result["by_category"]
    assert list(by_category) == ["edit", "news", "unknown"]  # None counts as "unknown"
    assert by_category["news"]["n"] == 2
    assert by_category["news"]["rouge1"] == pytest.approx((1.0 + 0.5) / 2)
    assert by_category["edit"]["rouge1"] == pytest.approx((6 / 7 + 1.0) / 2)
    assert by_category["unknown"]["rouge1"] == 0.0
    assert compute_rouge(predictions, references, n_resamples=200, seed=3) == {
        key: value for key, value in result.items() if key != "by_category"
    }


def test_compute_rouge_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        compute_rouge(["가", "나"], ["가"])
    with pytest.raises(ValueError, match="categories"):
        compute_rouge(["가"], ["가"], categories=["a", "b"])


def test_compute_rouge_of_nothing_is_zero() -> None:
    assert compute_rouge([], [], n_resamples=10) == {
        **dict.fromkeys(ROUGE_KEYS, 0.0),
        "n": 0,
        "ci95": {key: [0.0, 0.0] for key in ROUGE_KEYS},
    }


# --- agreement with independent implementations ------------------------------------------------


def _reference_scores(prediction: str, reference: str) -> dict[str, rouge_scorer.scoring.Score]:
    """rouge-score with our tokenizer; rougeLsum on our sentences joined by newlines."""
    tokenizer = KoreanTokenizer()
    scores = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=tokenizer).score(
        reference, prediction
    )
    scores |= rouge_scorer.RougeScorer(["rougeLsum"], tokenizer=tokenizer).score(
        "\n".join(split_sentences(reference)), "\n".join(split_sentences(prediction))
    )
    return scores


def _assert_agree(predictions: list[str], references: list[str]) -> None:
    for prediction, reference, ours in zip(
        predictions, references, score_pairs(predictions, references), strict=True
    ):
        theirs = _reference_scores(prediction, reference)
        for key in ROUGE_KEYS:
            for field in ("precision", "recall", "fmeasure"):
                assert getattr(ours[key], field) == pytest.approx(
                    getattr(theirs[key], field), abs=1e-6
                ), (key, field, prediction, reference)


def test_agrees_with_rouge_score_on_competition_sample(
    competition_rows: list[dict[str, str]],
) -> None:
    references = [row["summary"] for row in competition_rows]
    lead = [split_sentences(row["text"])[0] for row in competition_rows]
    assert len(lead) == 350
    _assert_agree(lead, references)
    # Multi-sentence predictions exercise ROUGE-Lsum's union LCS and its clipping.
    lead3 = ["\n".join(split_sentences(row["text"])[:3]) for row in competition_rows[:100]]
    _assert_agree(lead3, references[:100])


def test_tokenisation_matches_plain_mecab_on_competition_sample(
    competition_rows: list[dict[str, str]],
) -> None:
    tagger = mecab_ko.Tagger()  # full output format: "surface\tfeatures" lines, then EOS

    def mecab_morphs(text: str) -> list[str]:
        normalized = re.sub(r"[^A-Za-z0-9가-힣]", " ", text).lower()
        lines = tagger.parse(normalized).splitlines()
        return [line.split("\t")[0] for line in lines if line != "EOS"]

    for row in competition_rows:
        assert tokenize_korean(row["summary"]) == mecab_morphs(row["summary"])


def test_agrees_with_rouge_score_on_random_sentences() -> None:
    # Few distinct words, many repeats and random sentence breaks: many equally long LCSs, so
    # ROUGE-Lsum only agrees if the same LCS is chosen, and its clipping is exercised.
    rng = random.Random(7)
    words = ["서울", "부산", "대구", "광주", "대전"]

    def text() -> str:
        sentences = [
            " ".join(rng.choices(words, k=rng.randint(1, 6))) for _ in range(rng.randint(1, 3))
        ]
        return ". ".join(sentences)

    predictions = [text() for _ in range(300)]
    references = [text() for _ in range(300)]
    _assert_agree(predictions, references)


def _score_in_worker(pair: tuple[str, str]) -> dict[str, float]:
    return rouge_per_example([pair[0]], [pair[1]])[0]


def test_works_in_forked_workers() -> None:
    tokenize_korean("부모 프로세스가 먼저 형태소 분석기를 만든다")  # the tagger exists before fork
    pairs = [
        (f"서울 {i}번 버스가 부산에 갔다", f"부산 {i}번 버스가 서울에 왔다") for i in range(40)
    ]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        in_workers = pool.map(_score_in_worker, pairs)
    assert in_workers == rouge_per_example([p for p, _ in pairs], [r for _, r in pairs])


# --- evaluate module ----------------------------------------------------------------------------

_EVALUATE_SCRIPT = """
import json, sys
import evaluate
from kosum.metrics import evaluate_module_path
predictions, references, categories = json.loads(sys.stdin.read())
results = []
for path in (evaluate_module_path(), evaluate_module_path().parent):
    metric = evaluate.load(str(path))
    results.append(metric.compute(
        predictions=predictions, references=references, categories=categories, n_resamples=50
    ))
results.append(metric.compute(predictions=predictions, references=references, aggregation="micro"))
results.append(metric.compute(predictions=predictions, references=references, aggregation="none"))
print(json.dumps(results))
"""


def test_evaluate_module_loads_offline_and_matches(tmp_path: Path) -> None:
    assert evaluate_module_path().is_file()
    predictions = ["나는 빵을 먹었다", "고양이 고양이 고양이", "대구 광주. 서울 부산", ""]
    references = ["나는 밥을 먹었다", "고양이가 개를 쫓는다", "서울 부산.\n대구 광주", "서울"]
    categories = ["a", "b", "a", None]
    env = os.environ | {
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_EVALUATE_OFFLINE": "1",
    }
    completed = subprocess.run(
        [sys.executable, "-c", _EVALUATE_SCRIPT],
        input=json.dumps([predictions, references, categories]),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    by_file, by_dir, micro, per_example = json.loads(completed.stdout)
    expected = compute_rouge(predictions, references, categories=categories, n_resamples=50)
    assert by_file == expected  # JSON round-trips floats exactly
    assert by_dir == by_file
    assert micro == pytest.approx(corpus_rouge(predictions, references))
    rows = rouge_per_example(predictions, references)
    assert per_example == {key: [row[key] for row in rows] for key in ROUGE_KEYS}
    assert (tmp_path / "hf").is_dir()  # evaluate wrote its module cache under HF_HOME
