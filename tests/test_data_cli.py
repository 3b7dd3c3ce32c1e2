"""`kosum-data stats` / `kosum-data synth`: JSON output, text output, exit status 2 on errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kosum.cli.data import main
from kosum.data.aihub import CATEGORIES


@pytest.fixture(scope="module")
def zipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli-corpus")
    assert (
        main(["synth", str(out), "--docs-per-category", "4", "--sets", "2~3sent,20per", "--zip"])
        == 0
    )
    return out


def _stats_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["stats", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_synth_then_stats_json_counts_everything(zipped: Path, capsys: pytest.CaptureFixture):
    assert sorted(p.name for p in zipped.iterdir()) == ["20per.zip", "2~3sent.zip"]
    stats = _stats_json(capsys, str(zipped))
    assert stats["documents"] == 80 and stats["skipped"] == 0 and stats["skipped_files"] == []
    assert stats["by_category"] == {c: 8 for c in sorted(CATEGORIES)}
    assert stats["by_set"] == {"20per": 40, "2~3sent": 40}
    assert set(stats["by_split"]) <= {"train", "val"} and sum(stats["by_split"].values()) == 80
    text = stats["lengths"]["text_chars"]
    assert text["count"] == 80 and text["p50"] <= text["p95"] <= text["max"]
    assert 0 < stats["lengths"]["summary_chars"]["mean"] < text["mean"]


def test_stats_filters_and_tables_together(
    zipped: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    table = tmp_path / "extra.csv"
    table.write_text("id,text\nt1,본문 하나\nt2,\n", encoding="utf-8")
    stats = _stats_json(
        capsys, str(zipped), str(table), "--categories", "news_r,edit", "--set", "20per"
    )
    assert stats["by_category"] == {"edit": 4, "news_r": 4, "unknown": 1}
    assert stats["by_set"] == {"20per": 8, "unknown": 1}
    assert stats["skipped_files"] == [{"path": f"{table}:3", "reason": "empty 'text'"}]
    assert stats["lengths"]["summary_chars"]["count"] == 8  # the table has no summaries


def test_stats_reports_skipped_files(zipped: Path, tmp_path: Path, capsys):
    root = tmp_path / "corpus"
    shutil.copytree(zipped, root)
    (root / "REPORT-news_r-99999-00001.json").write_text("{broken", encoding="utf-8")
    stats = _stats_json(capsys, str(root))
    assert stats["documents"] == 80 and stats["skipped"] == 1
    [skipped] = stats["skipped_files"]
    assert skipped["path"].endswith("REPORT-news_r-99999-00001.json")
    assert "invalid JSON" in skipped["reason"]

    assert main(["stats", str(root)]) == 0
    out = capsys.readouterr().out
    assert "documents: 80" in out and "news_r" in out and "20per" in out
    assert "REPORT-news_r-99999-00001.json: invalid JSON" in out


def test_real_samples(shared_data: Path, capsys: pytest.CaptureFixture):
    stats = _stats_json(capsys, str(shared_data / "aihub582_sample"))
    assert stats["documents"] == 350 and stats["by_category"] == {"news_r": 350}
    assert 1000 < stats["lengths"]["text_chars"]["mean"] < stats["lengths"]["text_chars"]["max"]
    assert stats["lengths"]["summary_chars"]["max"] < 100


def test_errors_exit_2_with_one_line_and_no_traceback(
    zipped: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    assert main(["stats", str(tmp_path / "nowhere")]) == 2
    assert "path not found" in capsys.readouterr().err
    assert (
        main(
            [
                "stats",
                str(zipped),
                "--categories",
                "paper",
                "--summary-field",
                "summary3",
                "--set",
                "2~3sent",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "no documents" in err and "summary3" in err and "paper" in err
    assert main(["synth", str(tmp_path / "x"), "--categories", "blog"]) == 2

    process = subprocess.run(
        [sys.executable, "-m", "kosum.cli.data", "stats", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 2
    assert "Traceback" not in process.stderr and "path not found" in process.stderr
