"""TableSource: the competition CSV, hand-made CSV/JSONL tables with bad rows, column errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kosum.data.aihub import AihubSource, NoDocumentsError
from kosum.data.tables import TableSource
from kosum.errors import InputError


def _write_csv(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def test_competition_csv_equals_the_raw_json_after_normalisation(
    shared_data: Path, competition_csv: Path
):
    table = TableSource(competition_csv).load()
    raw = AihubSource(shared_data / "aihub582_sample").load()
    assert len(table.examples) == 350 and table.skipped == []
    assert {e.id: (e.text, e.summary) for e in table.examples} == {
        e.id: (e.text, e.summary) for e in raw.examples
    }
    assert {e.category for e in table.examples} == {None}
    # the CSV has no doc_id column: passages of one article are still one document for the
    # split, exactly as the AI-Hub loader groups them
    assert {e.id: e.doc_id for e in table.examples} == {e.id: e.doc_id for e in raw.examples}


def test_ai_hub_passage_ids_name_their_article(tmp_path: Path):
    path = _write_csv(
        tmp_path / "t.csv",
        "id,text,summary\n"
        "REPORT-news_r-00003-00001,본문 하나,요약\n"
        "REPORT-news_r-00003-00002,본문 둘,요약\n"
        "doc-7,본문 셋,요약\n"
        "news-sports-7,본문 넷,요약\n"  # not AI-Hub's: its own document
        "REPORT-news_r-00004,본문 다섯,요약\n",  # an article id: its own document too
    )
    examples = TableSource(path).load().examples
    assert [e.doc_id for e in examples] == [
        "REPORT-news_r-00003",
        "REPORT-news_r-00003",
        "doc-7",
        "news-sports-7",
        "REPORT-news_r-00004",
    ]


def test_csv_bad_rows_are_skipped_with_their_line(tmp_path: Path):
    path = _write_csv(
        tmp_path / "docs.csv",
        "id,text,summary\r\n"
        'a,"첫 줄\n  둘째 줄",요약 하나\r\n'  # a quoted field spanning two lines (lines 2-3)
        ",본문,요약\r\n"  # line 4: empty id
        'b," \u200b ",요약\r\n'  # line 5: text empty once normalised
        "c,본문 셋,\r\n"  # line 6: empty summary
        "a,다른 본문,다른 요약\r\n"  # line 7: duplicate of line 2
        "d,본문 넷\r\n"  # line 8: a field short
        "\r\n"  # blank line: not a record
        "e,본문\u200b 다섯 ,요약  다섯\r\n",  # line 10
        bom=True,
    )
    result = TableSource(path).load()
    assert [(e.id, e.text, e.summary) for e in result.examples] == [
        ("a", "첫 줄 둘째 줄", "요약 하나"),
        ("e", "본문 다섯", "요약 다섯"),
    ]
    skipped = {s.path: s.reason for s in result.skipped}
    assert skipped == {
        f"{path}:4": "empty 'id'",
        f"{path}:5": "empty 'text'",
        f"{path}:6": "empty 'summary'",
        f"{path}:7": "duplicate id 'a' (first at line 2)",
        f"{path}:8": "expected 3 fields (['id', 'text', 'summary']), found 2",
    }


def test_missing_required_column_names_file_and_columns_found(tmp_path: Path):
    path = _write_csv(tmp_path / "test.csv", "id,body\nx,본문\n")
    with pytest.raises(ValueError, match=r"test\.csv.*\['text'\].*\['id', 'body'\]"):
        TableSource(path, require_summary=False).load()
    path = _write_csv(tmp_path / "nosummary.csv", "id,text\nx,본문\n")
    with pytest.raises(ValueError, match=r"nosummary\.csv.*\['summary'\]"):
        TableSource(path).load()


def test_inference_tables_need_no_summary_and_custom_columns_work(tmp_path: Path):
    path = _write_csv(tmp_path / "test.csv", "doc,body,kind\n1,본문  하나,news_r\n2,본문 둘,\n")
    source = TableSource(
        path, id_column="doc", text_column="body", category_column="kind", require_summary=False
    )
    examples = source.load().examples
    assert [(e.id, e.text, e.summary, e.category) for e in examples] == [
        ("1", "본문 하나", "", "news_r"),
        ("2", "본문 둘", "", None),
    ]


def test_jsonl_rows_keys_and_errors(tmp_path: Path):
    rows = [
        {"id": 7, "text": "본문\n  일곱", "summary": "요약", "category": "paper", "doc_id": "A"},
        {"id": "8", "text": "본문 여덟", "summary": "요약", "doc_id": "A"},
        "[1, 2]",
        "{broken",
        {"id": "9", "summary": "요약"},
        {"id": "8", "text": "다시", "summary": "요약"},
        {"id": "10", "text": "줄\u2028바꿈", "summary": "요약"},
    ]
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows]
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    result = TableSource(path).load()
    assert [(e.id, e.text, e.category, e.doc_id) for e in result.examples] == [
        ("7", "본문 일곱", "paper", "A"),
        ("8", "본문 여덟", None, "A"),
        ("10", "줄 바꿈", None, "10"),
    ]
    reasons = {s.path.rsplit(":", 1)[1]: s.reason for s in result.skipped}
    assert reasons.keys() == {"3", "4", "5", "6"}
    assert reasons["3"] == "not a JSON object" and reasons["4"].startswith("invalid JSON")
    assert reasons["5"] == "empty 'text'" and reasons["6"].startswith("duplicate id '8'")

    no_text = tmp_path / "no_text.jsonl"
    no_text.write_text('{"id": "1", "body": "본문", "summary": "요약"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"missing required column.*'text'.*'body'"):
        TableSource(no_text).load()


def test_unusable_tables_fail_clearly(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"missing\.csv"):
        TableSource(tmp_path / "missing.csv")
    (tmp_path / "docs.tsv").write_text("id\ttext\n")
    with pytest.raises(ValueError, match="unsupported table type"):
        TableSource(tmp_path / "docs.tsv")
    cp949 = tmp_path / "cp949.csv"
    cp949.write_bytes("id,text,summary\n1,본문,요약\n".encode("cp949"))
    with pytest.raises(ValueError, match="not UTF-8"):
        TableSource(cp949).load()
    empty = _write_csv(tmp_path / "empty.csv", "id,text,summary\n,,\n")
    with pytest.raises(NoDocumentsError, match=r"empty\.csv: skipped 1 record\(s\)"):
        TableSource(empty).load()
    header_only = _write_csv(tmp_path / "header.csv", "id,text,summary\n")
    with pytest.raises(NoDocumentsError, match=r"no documents in .*header\.csv \(no rows\)$"):
        TableSource(header_only).load()
    blank = _write_csv(tmp_path / "blank.csv", "\n")
    with pytest.raises(InputError, match=r"blank\.csv: empty file"):
        TableSource(blank).load()


def test_fingerprint_tracks_file_and_options(tmp_path: Path):
    path = _write_csv(tmp_path / "docs.csv", "id,text,summary\n1,본문,요약\n")
    first = TableSource(path).fingerprint()
    assert TableSource(path).fingerprint() == first
    assert TableSource(path, require_summary=False).fingerprint() != first
    os.utime(path, ns=(1, 1))
    assert TableSource(path).fingerprint() != first
