"""Failures a long sweep meets: a loss that stops being a number, jobs sharing a cold cache,
secrets in the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_nan_loss_stops_the_run_at_its_step_and_records_why(run_cli, tmp_path: Path):
    run_dir = tmp_path / "run"
    result = run_cli(
        "kosum.cli.train",
        "experiment=smoke",
        "peft=full",
        "optim.lr=1e30",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("kosum-train: error: the training loss is nan at optimiser step ")
    assert "a learning rate too high" in error
    record = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert record["status"] == "failed" and "TrainingDiverged" in record["error"]
    assert "metrics" not in record  # nothing after the divergence is reported as a result
    assert not (run_dir / "predictions.jsonl").exists() and not (run_dir / "model").exists()
    # It stopped at the step: no checkpoint was written after it (the first is at epoch end).
    assert not (run_dir / "checkpoints" / "last.ckpt").exists()


def _env(cache_dir: Path) -> dict[str, str]:
    """A kosum command's environment: the given cache, W&B offline."""
    return {**os.environ, "KOSUM_CACHE_DIR": str(cache_dir), "WANDB_MODE": "offline"}


def _start_train(cache_dir: Path, run_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kosum.cli.train",
            *(arg for arg in extra if arg.startswith("--")),  # Hydra's flags come first
            "experiment=smoke",
            *(arg for arg in extra if not arg.startswith("--")),
            f"hydra.run.dir={run_dir}",
        ],
        cwd=REPO_ROOT,
        env=_env(cache_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_jobs_starting_at_once_share_a_cold_cache_and_get_a_serial_runs_data(tmp_path: Path):
    """Two processes, and the two parallel jobs of a joblib sweep, build the same corpus,
    tokenizer and tokenised splits into one empty cache at the same time; each trains exactly
    as a run on its own cache does."""
    serial = _start_train(tmp_path / "cache_serial", tmp_path / "serial")
    assert serial.wait() == 0, serial.stderr.read()
    shared = tmp_path / "cache_shared"
    started = [_start_train(shared, tmp_path / f"at_once_{n}") for n in range(2)]
    for process in started:
        assert process.wait() == 0, process.stderr.read()
    swept = tmp_path / "cache_swept"
    sweep = _start_train(
        swept, tmp_path / "unused", "--multirun", "launcher=joblib", "seed=42,42",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )  # fmt: skip
    assert sweep.wait() == 0, sweep.stderr.read()
    expected = json.loads((tmp_path / "serial" / "results.json").read_text(encoding="utf-8"))
    at_once = [tmp_path / "at_once_0", tmp_path / "at_once_1"]
    for run_dir in [*at_once, tmp_path / "sweep" / "0", tmp_path / "sweep" / "1"]:
        run = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
        assert run["metrics"] == expected["metrics"], run_dir
        assert run["data"]["examples"] == expected["data"]["examples"], run_dir
    for cache in (shared, swept):
        assert not list(cache.rglob("*.tmp")) and not list(cache.rglob(".*.tmp"))  # no leftovers


SECRETS = {
    "WANDB_API_KEY": "kosum-test-secret-wandb-0123456789",
    "HF_TOKEN": "hf_kosumTestSecret0123",
}


@pytest.mark.slow
def test_planted_secrets_reach_no_file_kosum_writes(run_cli, tmp_path: Path, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    run_dir, eval_dir, report_dir = tmp_path / "run", tmp_path / "eval", tmp_path / "report"
    commands = [
        ("kosum.cli.train", "experiment=smoke", "logger=wandb", f"hydra.run.dir={run_dir}"),
        ("kosum.cli.evaluate", f"run={run_dir}", f"hydra.run.dir={eval_dir}"),
        ("kosum.cli.report", str(run_dir), "--out", str(report_dir)),
    ]
    for module, *args in commands:
        result = run_cli(module, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(written) > 20 and any(path.suffix == ".wandb" for path in written)
    for path in written:
        content = path.read_bytes()
        for name, value in SECRETS.items():
            assert value.encode() not in content, f"{name} leaked into {path}"


def test_a_model_folder_of_pickles_is_refused_unless_allowed(tmp_path: Path):
    import torch
    from safetensors.torch import load_file

    from kosum.errors import InputError
    from kosum.models.backbone import load_pretrained
    from tiny_models import tiny_t5

    folder = tmp_path / "pickled"
    tiny_t5(64).save_pretrained(folder)  # transformers 5 writes safetensors only: convert
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(InputError, match=r"pickles only \(pytorch_model.bin\).*allow_pickle=true"):
        load_pretrained(str(folder))
    assert load_pretrained(str(folder), allow_pickle=True).config.vocab_size == 64


@pytest.mark.slow
def test_a_pickled_adapter_in_a_run_folder_is_refused_unless_allowed(run_cli, tmp_path: Path):
    import torch
    from safetensors.torch import load_file

    run_dir = tmp_path / "run"
    trained = run_cli("kosum.cli.train", "experiment=smoke", f"hydra.run.dir={run_dir}")
    assert trained.returncode == 0, trained.stderr[-3000:]
    adapter = run_dir / "adapter"
    weights = load_file(adapter / "adapter_model.safetensors")
    torch.save(weights, adapter / "adapter_model.bin")  # as someone else's folder might hold it
    (adapter / "adapter_model.safetensors").unlink()
    refused = run_cli("kosum.cli.evaluate", f"run={run_dir}", f"hydra.run.dir={tmp_path / 'a'}")
    assert refused.returncode == 2
    assert "pickles only (adapter_model.bin)" in refused.stderr.strip().splitlines()[-1]
    allowed = run_cli(
        "kosum.cli.evaluate",
        f"run={run_dir}",
        "allow_pickle=true",
        f"hydra.run.dir={tmp_path / 'b'}",
    )
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    record = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    evaluated = json.loads((tmp_path / "b" / "results.json").read_text(encoding="utf-8"))
    assert evaluated["metrics"]["loss"] == record["metrics"]["loss"]


PEFT_CONFIGS = sorted(path.stem for path in (REPO_ROOT / "conf" / "peft").glob("*.yaml"))


@pytest.mark.slow
def test_every_method_gives_bit_identical_numbers_in_two_fresh_processes(run_cli, tmp_path):
    """Each process runs every conf/peft/ method (one epoch of the smoke experiment) as a
    multirun; job by job, the two processes' metrics and predictions are identical."""
    for sweep in ("first", "second"):
        result = run_cli(
            "kosum.cli.train",
            "--multirun",
            "experiment=smoke",
            "trainer.max_epochs=1",
            f"peft={','.join(PEFT_CONFIGS)}",
            f"hydra.sweep.dir={tmp_path / sweep}",
        )
        assert result.returncode == 0, result.stderr[-3000:]
    for job, method in enumerate(PEFT_CONFIGS):
        first, second = (tmp_path / sweep / str(job) for sweep in ("first", "second"))
        records = [
            json.loads((run / "results.json").read_text(encoding="utf-8"))
            for run in (first, second)
        ]
        assert records[0]["status"] == "completed", (method, records[0].get("error"))
        assert records[0]["method"] == method
        assert records[0]["metrics"] == records[1]["metrics"], method
        assert (first / "predictions.jsonl").read_bytes() == (
            second / "predictions.jsonl"
        ).read_bytes()


@pytest.mark.slow
def test_a_run_killed_again_and_again_at_random_moments_ends_as_if_never_killed(
    run_cli, cache_dir, tmp_path: Path
):
    """SIGKILL at seeded random moments after the first checkpoint (inside training steps,
    validation, checkpoint writes: wherever they fall), three times, each session resumed
    with resume=auto: the run ends with the uninterrupted run's metrics and predictions, and
    no half-written checkpoint is ever resumed from."""
    import random
    import signal
    import time

    args = ["trainer.max_epochs=3", "callbacks.last_checkpoint.every_n_train_steps=1"]
    args += ["optim.lr=1e-2", "resume=auto"]
    reference = run_cli(
        "kosum.cli.train", "experiment=smoke", *args, f"hydra.run.dir={tmp_path / 'reference'}"
    )
    assert reference.returncode == 0, reference.stderr[-3000:]
    run_dir = tmp_path / "killed"
    last = run_dir / "checkpoints" / "last.ckpt"
    moments = random.Random(7)
    kills = 0
    for _ in range(3):
        process = _start_train(cache_dir, run_dir, *args)
        seen = last.stat().st_mtime_ns if last.exists() else None
        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline:
            if last.exists() and last.stat().st_mtime_ns != seen:  # this session checkpointed
                break
            time.sleep(0.02)
        time.sleep(moments.uniform(0.0, 1.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills >= 2, "the run finished before it could be killed"
    final = _start_train(cache_dir, run_dir, *args)
    assert final.wait() == 0, final.stderr.read()
    expected = json.loads((tmp_path / "reference" / "results.json").read_text(encoding="utf-8"))
    record = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert record["status"] == "completed"
    assert record["metrics"] == expected["metrics"]
    assert (run_dir / "predictions.jsonl").read_bytes() == (
        tmp_path / "reference" / "predictions.jsonl"
    ).read_bytes()


def _inject(cache_dir: Path, fault: str, argument: str, module: str, *args: str):
    """`module` run with one fault (see tests/fault_injection.py) in a process of its own."""
    command = [sys.executable, str(REPO_ROOT / "tests" / "fault_injection.py"), fault, argument]
    return subprocess.run(
        [*command, module, *args],
        cwd=REPO_ROOT,
        env=_env(cache_dir),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.name.endswith((".tmp", ".old"))]


@pytest.mark.slow
def test_a_kill_inside_a_checkpoint_write_resumes_from_the_previous_checkpoint(
    run_cli, cache_dir, tmp_path: Path
):
    """SIGKILL with a checkpoint half-written: last.ckpt is still the previous, complete one;
    resume=auto removes the cut-off file, resumes from last.ckpt and ends with the metrics and
    predictions of a run never killed."""
    from kosum.training.checkpoint_io import SafetensorsCheckpointIO

    args = ["trainer.max_epochs=2", "callbacks.last_checkpoint.every_n_train_steps=1"]
    args += ["optim.lr=1e-2", "resume=auto"]
    reference = tmp_path / "reference"
    completed = run_cli("kosum.cli.train", "experiment=smoke", *args, f"hydra.run.dir={reference}")
    assert completed.returncode == 0, completed.stderr[-3000:]

    run_dir = tmp_path / "killed"
    run = ["experiment=smoke", *args, f"hydra.run.dir={run_dir}"]
    killed = _inject(cache_dir, "kill-in-write", "3", "kosum.cli.train", *run)
    assert killed.returncode == -9, killed.stderr[-3000:]
    checkpoints = run_dir / "checkpoints"
    step = SafetensorsCheckpointIO().load_checkpoint(checkpoints / "last.ckpt")["global_step"]
    assert step == 2  # the second write's, whole
    [cut_off] = list(checkpoints.glob(".last.ckpt.*.tmp"))  # the write the kill stopped

    resumed = run_cli("kosum.cli.train", *run)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "a checkpoint write cut short" in resumed.stdout + resumed.stderr
    assert not cut_off.exists()
    record = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    expected = json.loads((reference / "results.json").read_text(encoding="utf-8"))
    assert record["metrics"] == expected["metrics"]
    assert (run_dir / "predictions.jsonl").read_bytes() == (
        reference / "predictions.jsonl"
    ).read_bytes()


@pytest.mark.slow
def test_a_full_disk_mid_run_names_the_file_and_leaves_the_previous_files_intact(
    run_cli, cache_dir, tmp_path: Path
):
    """A write the disk refuses fails the command in one line naming the file; whatever was
    there before (an earlier evaluation's predictions, a report) is left whole; nothing
    half-written or staged is left behind."""
    trained = tmp_path / "run"
    completed = run_cli("kosum.cli.train", "experiment=smoke", f"hydra.run.dir={trained}")
    assert completed.returncode == 0, completed.stderr[-3000:]

    # A checkpoint: the run fails at its first checkpoint and records why.
    run_dir = tmp_path / "checkpoint_refused"
    failed = _inject(
        cache_dir, "full-disk", "last.ckpt", "kosum.cli.train", "experiment=smoke",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert failed.returncode == 2, failed.stderr[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    assert failed.stderr.strip().splitlines()[-1] == (
        f"kosum-train: error: cannot write {last}: No space left on device; nothing was "
        f"written (recorded in {run_dir}/results.json)"
    )
    record = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert record["status"] == "failed" and "WriteFailed" in record["error"]
    assert not _leftovers(run_dir)

    # Predictions of a second evaluation into the same folder: the first one's stay.
    evaluated = tmp_path / "eval"
    first = run_cli("kosum.cli.evaluate", f"run={trained}", f"hydra.run.dir={evaluated}")
    assert first.returncode == 0, first.stderr[-3000:]
    before = {p.name: p.read_bytes() for p in evaluated.iterdir() if p.is_file()}
    again = _inject(
        cache_dir, "full-disk", "predictions.jsonl", "kosum.cli.evaluate", f"run={trained}",
        f"hydra.run.dir={evaluated}",
    )  # fmt: skip
    assert again.returncode == 2, again.stderr[-3000:]
    assert (
        again.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"kosum-eval: error: cannot write {evaluated / 'predictions.jsonl'}: No space left on "
            "device; the previous predictions.jsonl is left as it was"
        )
    )
    assert (evaluated / "predictions.jsonl").read_bytes() == before["predictions.jsonl"]
    assert not _leftovers(evaluated)

    # A report written again over an earlier one.
    report = tmp_path / "report"
    assert run_cli("kosum.cli.report", str(trained), "--out", str(report)).returncode == 0
    before = {p.name: p.read_bytes() for p in report.iterdir() if p.is_file()}
    again = _inject(
        cache_dir, "full-disk", "results.csv", "kosum.cli.report", str(trained), "--out",
        str(report),
    )  # fmt: skip
    assert again.returncode == 2, again.stderr[-3000:]
    assert again.stderr.strip().splitlines()[-1] == (
        f"kosum-report: error: cannot write {report / 'results.csv'}: No space left on "
        "device; the previous results.csv is left as it was"
    )
    assert {p.name: p.read_bytes() for p in report.iterdir() if p.is_file()} == before
    assert not _leftovers(report)


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write to: a read-only mount when running as root (who
    ignores file modes), else a folder without write permission."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return folder
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"running as root without a way to mount a read-only folder: {mounted}")
    return folder


@pytest.fixture
def read_only_folder(tmp_path: Path):
    folder = _read_only_folder(tmp_path)
    yield folder
    if os.geteuid() == 0:
        subprocess.run(["umount", str(folder)], check=True)
    else:
        folder.chmod(0o755)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "args", "key"),
    [
        ("kosum.cli.train", ["experiment=smoke"], "hydra.run.dir"),
        ("kosum.cli.train", ["--multirun", "experiment=smoke", "seed=1,2"], "hydra.sweep.dir"),
        ("kosum.cli.evaluate", ["run=nowhere"], "hydra.run.dir"),
    ],
)
def test_a_read_only_output_folder_is_refused_before_anything_runs(
    run_cli, read_only_folder: Path, module: str, args: list[str], key: str
):
    output = read_only_folder / "run"
    result = run_cli(module, *args, f"{key}={output}")
    assert result.returncode == 2, result.stderr[-3000:]
    program = "kosum-eval" if module.endswith("evaluate") else "kosum-train"
    assert result.stderr.strip().splitlines() == [
        f"{program}: error: cannot write the output folder {output} ({read_only_folder}: "
        f"{os.strerror(30 if os.geteuid() == 0 else 13)}); choose a writable one with "
        f"{key}=<folder>"
    ]
