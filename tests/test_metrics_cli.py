"""`kosum-rouge`: CSV and JSONL inputs, JSON and table output, errors as exit code 2."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kosum.cli.rouge import main
from kosum.metrics import ROUGE_KEYS, compute_rouge, corpus_rouge

# Small fixture: ids, reference rows (id,text,summary,category) and predictions.
REFERENCES = [
    ("d1", "본문 하나", "나는 밥을 먹었다", "news"),
    ("d2", "본문 둘", "서울 부산 대구", "news"),
    ("d3", "본문 셋", "고양이가 개를 쫓는다", "edit"),
    ("d4", "본문 넷", "BTS 빌보드 1위", "edit"),
]
PREDICTIONS = {
    "d1": "나는 빵을 먹었다",
    "d2": "대구 부산 서울",
    "d3": "고양이 고양이 고양이",
    "d4": "BTS가 빌보드 1위를 차지했다",
}


def _write_csv(
    path: Path, header: list[str], rows: list[tuple[str, ...]], bom: bool = False
) -> Path:
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    return path


@pytest.fixture
def ref_csv(tmp_path: Path) -> Path:
    return _write_csv(tmp_path / "ref.csv", ["id", "text", "summary", "category"], REFERENCES)


@pytest.fixture
def pred_csv(tmp_path: Path) -> Path:
    # Submission order differs from the references': rows are matched by id.
    rows = [(i, PREDICTIONS[i]) for i in reversed(PREDICTIONS)]
    return _write_csv(tmp_path / "pred.csv", ["id", "summary"], rows, bom=True)


def _run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # exactly one JSON object
    return json.loads(out)


def _expected(**kwargs: object) -> dict:
    predictions = [PREDICTIONS[i] for i, *_ in REFERENCES]
    references = [summary for _, _, summary, _ in REFERENCES]
    return compute_rouge(predictions, references, **kwargs)


def test_csv_json_output(capsys: pytest.CaptureFixture[str], pred_csv: Path, ref_csv: Path) -> None:
    result = _run_json(
        capsys, "--pred", str(pred_csv), "--ref", str(ref_csv), "--n-resamples", "200"
    )
    expected = _expected(n_resamples=200, seed=0)
    assert result["n"] == 4
    for key in ROUGE_KEYS:
        assert result[key] == pytest.approx(expected[key])
        assert 0.0 <= result[key] <= 1.0
        assert result["ci95"][key] == pytest.approx(expected["ci95"][key])
        low, high = result["ci95"][key]
        assert low <= result[key] <= high
    predictions = [PREDICTIONS[i] for i, *_ in REFERENCES]
    references = [summary for _, _, summary, _ in REFERENCES]
    assert result["micro"] == pytest.approx(corpus_rouge(predictions, references))
    # Hand-counted ROUGE-1 precision (see test_metrics_rouge): 6/7, 1, 1/3, 4/9.
    assert result["precision"]["rouge1"] == pytest.approx((6 / 7 + 1 + 1 / 3 + 4 / 9) / 4)
    assert "by_category" not in result
    assert (result["n_resamples"], result["seed"]) == (200, 0)


def test_jsonl_with_prediction_and_reference_in_one_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rows: list[dict[str, object]] = [
        {"id": i, "prediction": PREDICTIONS[i], "reference": summary, "category": category}
        for i, _, summary, category in REFERENCES
    ]
    both = _write_jsonl(tmp_path / "both.jsonl", rows)
    result = _run_json(capsys, "--pred", str(both), "--ref", str(both), "--n-resamples", "0")
    expected = _expected()
    assert {key: result[key] for key in ROUGE_KEYS} == pytest.approx(
        {key: expected[key] for key in ROUGE_KEYS}
    )
    assert "ci95" not in result


def test_jsonl_predictions_against_csv_references(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ref_csv: Path
) -> None:
    pred = _write_jsonl(
        tmp_path / "pred.jsonl", [{"id": i, "summary": s} for i, s in PREDICTIONS.items()]
    )
    result = _run_json(capsys, "--pred", str(pred), "--ref", str(ref_csv), "--n-resamples", "0")
    assert result["rouge1"] == pytest.approx(_expected()["rouge1"])


def test_by_category(capsys: pytest.CaptureFixture[str], pred_csv: Path, ref_csv: Path) -> None:
    result = _run_json(
        capsys, "--pred", str(pred_csv), "--ref", str(ref_csv), "--by-category", "--seed", "7"
    )
    expected = _expected(
        categories=[category for *_, category in REFERENCES], n_resamples=1000, seed=7
    )
    assert sorted(result["by_category"]) == ["edit", "news"]
    for category in ("edit", "news"):
        assert result["by_category"][category]["n"] == 2
        for key in ROUGE_KEYS:
            assert result["by_category"][category][key] == pytest.approx(
                expected["by_category"][category][key]
            )
    # Hand-counted ROUGE-1 F1: news (6/7 + 1) / 2, edit (2/9 + 8/13) / 2.
    assert result["by_category"]["news"]["rouge1"] == pytest.approx((6 / 7 + 1) / 2)
    assert result["by_category"]["edit"]["rouge1"] == pytest.approx((2 / 9 + 8 / 13) / 2)


def test_table_output(capsys: pytest.CaptureFixture[str], pred_csv: Path, ref_csv: Path) -> None:
    argv = ["--pred", str(pred_csv), "--ref", str(ref_csv), "--by-category", "--n-resamples", "50"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Korean ROUGE (Mecab morphemes), n = 4")
    rouge1 = next(line for line in lines if line.startswith("rouge1 "))
    assert f"{_expected()['rouge1']:.4f}" in rouge1
    assert any(line.startswith("news ") for line in lines)


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def test_missing_ids_on_both_sides_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ref_csv: Path
) -> None:
    rows = [("d1", "가"), ("d2", "나"), ("x9", "다")]
    pred = _write_csv(tmp_path / "pred.csv", ["id", "summary"], rows)
    err = _error(capsys, ["--pred", str(pred), "--ref", str(ref_csv)])
    assert "2 reference id(s) have no prediction: d3, d4" in err
    assert "1 prediction id(s) have no reference: x9" in err


def test_many_missing_ids_are_abbreviated(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ref = _write_csv(tmp_path / "ref.csv", ["id", "summary"], [(f"r{i}", "가") for i in range(30)])
    pred = _write_csv(tmp_path / "pred.csv", ["id", "summary"], [("r0", "가")])
    err = _error(capsys, ["--pred", str(pred), "--ref", str(ref)])
    assert "29 reference id(s) have no prediction: r1, r2," in err
    assert "... (19 more)" in err


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("id,text\nd1,가\n", ".csv", "needs an 'id' column and one of ['prediction', 'summary']"),
        ("id,summary\nd1,가\nd1,나\n", ".csv", "1 duplicate id(s): d1"),
        ("id,summary\n", ".csv", "no records"),
        # a short row is not an empty summary to score 0
        ("id,summary\nd1,가\nd2\n", ".csv", "pred.csv:3: expected 2 fields"),
        ('{"id": "d1"}\n', ".jsonl", "pred.jsonl:1: needs 'id' and one of"),
        ('{"id": "d1", "summary": "가"}\nnot json\n', ".jsonl", "pred.jsonl:2: invalid JSON"),
        ("id\tsummary\n", ".tsv", "expected a .csv or .jsonl file"),
    ],
)
def test_bad_prediction_files_exit_2(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    ref_csv: Path,
    content: str,
    suffix: str,
    message: str,
) -> None:
    pred = tmp_path / f"pred{suffix}"
    pred.write_text(content, encoding="utf-8")
    assert message in _error(capsys, ["--pred", str(pred), "--ref", str(ref_csv)])


def test_missing_file_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ref_csv: Path
) -> None:
    err = _error(capsys, ["--pred", str(tmp_path / "absent.csv"), "--ref", str(ref_csv)])
    assert "absent.csv: file not found" in err


@pytest.mark.parametrize("option", ["--n-resamples", "--seed"])
def test_negative_count_or_seed_is_a_usage_error(
    pred_csv: Path, ref_csv: Path, option: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--pred", str(pred_csv), "--ref", str(ref_csv), option, "-1"])
    assert exit_info.value.code == 2


def test_module_entry_point_reports_errors_without_traceback(tmp_path: Path, ref_csv: Path) -> None:
    pred = _write_csv(tmp_path / "pred.csv", ["id", "summary"], [("d1", "가")])
    completed = subprocess.run(
        [sys.executable, "-m", "kosum.cli.rouge", "--pred", str(pred), "--ref", str(ref_csv)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert "kosum-rouge: error: ids do not match" in completed.stderr
    assert "d2, d3, d4" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_a_reader_that_stops_early_gets_no_traceback(pred_csv: Path, ref_csv: Path) -> None:
    """`kosum-rouge ... | head`: the pipe closes before the output is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will read: the first write raises BrokenPipeError
    completed = subprocess.run(
        [sys.executable, "-m", "kosum.cli.rouge", "--pred", str(pred_csv), "--ref", str(ref_csv)],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )
    os.close(write_end)
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
