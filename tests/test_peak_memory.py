"""Each run's `peak_memory_mb` is its own, though a multirun's jobs share one process."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from kosum.training.peak_memory import PeakMemory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux's")
def test_a_later_run_does_not_inherit_an_earlier_runs_peak():
    first = PeakMemory()
    if not first.rss_reset:
        pytest.skip("/proc/self/clear_refs cannot be written here: the peak is the process's")
    block = np.ones(300 * 2**20 // 8)  # 300 MiB, touched
    first_peak, kind = first.mb(torch.device("cpu"))
    del block
    second_peak, _ = PeakMemory().mb(torch.device("cpu"))
    assert kind == "rss"
    assert first_peak - second_peak > 250
