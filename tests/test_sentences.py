"""The Korean sentence splitter behind `first_sentence`: hand-made cases and the real AI-Hub data.

The real-data test runs `kosum.text.sentence_eval` (the comparison documented in
docs/inference.md) and checks that kosum's splitter never cuts where the data has no sentence
boundary and does at least as well as the splitters it replaced.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kosum.generation import GenerationSettings
from kosum.text.sentence_eval import compare, passage_lines
from kosum.text.sentences import first_sentence, split_sentences


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("정부는 예산을 늘렸다. 야당은 반대했다.", ["정부는 예산을 늘렸다.", "야당은 반대했다."]),
        ("정말 그럴까? 아니다! 그렇죠. 맞아요.", ["정말 그럴까?", "아니다!", "그렇죠.", "맞아요."]),
        # decimals, and decimals/dates broken by a space as in the AI-Hub text
        ("물가는 3.5% 올랐다. 다음 달도 오른다.", ["물가는 3.5% 올랐다.", "다음 달도 오른다."]),
        ("고객은 1. 5m 거리를 둔다. 끝이다.", ["고객은 1. 5m 거리를 둔다.", "끝이다."]),
        ("2020. 3. 15. 기준 확진자는 늘었다.", ["2020. 3. 15. 기준 확진자는 늘었다."]),
        # a quotation embedded in the reporting sentence stays in it
        (
            '그는 "정말 좋다. 또 오겠다"고 말했다. 모두 웃었다.',
            ['그는 "정말 좋다. 또 오겠다"고 말했다.', "모두 웃었다."],
        ),
        (
            "김 대표는 “위기다. 대책이 필요하다”며 “곧 발표하겠다”고 밝혔다. 회의는 끝났다.",
            ["김 대표는 “위기다. 대책이 필요하다”며 “곧 발표하겠다”고 밝혔다.", "회의는 끝났다."],
        ),
        (
            "그는 '그만하라.'고 말했다. 다음 날 떠났다.",
            ["그는 '그만하라.'고 말했다.", "다음 날 떠났다."],
        ),
        # a quotation standing on its own: its sentences split, the closing mark stays attached
        ("“가자. 어서.” 그가 말했다.", ["“가자.", "어서.”", "그가 말했다."]),
        ("보다 안전한(?) 방식을 택했다. 끝.", ["보다 안전한(?) 방식을 택했다.", "끝."]),
        # initials and abbreviations
        (
            "미국인 호머 B. 헐버트가 왔다. Mr. Kim도 왔다.",
            ["미국인 호머 B. 헐버트가 왔다.", "Mr. Kim도 왔다."],
        ),
        # ellipses: a pause inside a sentence, an end after a sentence-final ending
        ("그런데… 이제는 다르다.", ["그런데… 이제는 다르다."]),
        ("시간이 흘렀다... 그리고 봄이 왔다.", ["시간이 흘렀다...", "그리고 봄이 왔다."]),
        # generated text without the space after the full stop
        ("비가 왔다.그러나 경기는 열렸다.", ["비가 왔다.", "그러나 경기는 열렸다."]),
        ("  끝나지 않은 문장  ", ["끝나지 않은 문장"]),
        ("", []),
    ],
)
def test_split_sentences(text: str, expected: list[str]):
    assert split_sentences(text) == expected


def test_first_sentence_and_postprocess():
    assert first_sentence("") == ""
    assert first_sentence('시장은 "내일 발표한다. 기다려 달라"고 했다. 기자들은 떠났다.') == (
        '시장은 "내일 발표한다. 기다려 달라"고 했다.'
    )
    seed = GenerationSettings(generate={"num_beams": 8}, first_sentence=True)
    assert seed.postprocess(" 금리가 0.25%p 올랐다. 시장은 놀랐다. ") == "금리가 0.25%p 올랐다."
    assert GenerationSettings().postprocess(" 두 문장. 그대로. ") == "두 문장. 그대로."


def test_gold_lines_repair_the_sources_line_break_artefacts():
    raw = "구직자의 34.\n 8%가 늘었다.\n “좋다.\n ” 그가 말했다.\n 왜일까? 답은 없다.\n"
    assert passage_lines(raw) == [
        "구직자의 34. 8%가 늘었다.",  # a decimal broken at its point
        "“좋다.”",  # a closing quote carried to the next line
        "그가 말했다.",
        "왜일까?",  # the source breaks after "." only
        "답은 없다.",
    ]


def test_real_data_comparison(shared_data: Path):
    report = compare(shared_data / "aihub582_sample")
    results = report["results"]
    assert report["documents"] == 350 and report["summary2_as_passage_lines"] >= 300
    kosum = results["kosum"]
    # never cuts a one-sentence reference summary (the first_sentence use case) ...
    assert kosum["summary1"]["exact"] == 1.0
    # ... nor anywhere the data has no sentence boundary
    for name in ("summary2", "passage"):
        assert kosum[name]["boundary_precision"] >= 0.995, (name, kosum[name])
        assert kosum[name]["boundary_recall"] >= 0.95, (name, kosum[name])
    for other in ("naive_regex", "punkt_untrained"):
        assert kosum["summary1"]["exact"] >= results[other]["summary1"]["exact"]
        assert kosum["passage"]["boundary_f1"] >= results[other]["passage"]["boundary_f1"]
        assert (
            kosum["passage"]["boundary_precision"] > results[other]["passage"]["boundary_precision"]
        )
