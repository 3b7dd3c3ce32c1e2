"""A run's peak memory: CUDA memory allocated on a GPU, resident set size (RSS) on a CPU.

The jobs of a Hydra multirun share one process, whose peak only grows: each run resets it when
it starts, so a sweep's `peak_memory_mb` is every job's own. On Linux the CPU peak is `VmHWM`
from /proc/self/status, which writing 5 to /proc/self/clear_refs resets; where that is not
possible it is `ru_maxrss`, the process's peak so far (the record's `peak_memory_kind` says
which).
"""

from __future__ import annotations

from pathlib import Path

import torch

PROC = Path("/proc/self")


class PeakMemory:
    """Created when a run starts (resetting the peaks); `mb()` when it ends."""

    def __init__(self) -> None:
        # an earlier job's CUDA peak; a fresh process has none (and a CPU run starts no context)
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.reset_peak_memory_stats()
        try:
            (PROC / "clear_refs").write_text("5")
            self.rss_reset = True
        except OSError:  # not Linux, or not permitted
            self.rss_reset = False

    def mb(self, device: torch.device) -> tuple[float | None, str]:
        """The peak since creation in MiB on the run's `device`, and what it measures."""
        if device.type == "cuda":
            return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_allocated"
        if self.rss_reset:
            for line in (PROC / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):  # "VmHWM:   221336 kB"
                    return int(line.split()[1]) / 1024, "rss"
        try:
            import resource
        except ImportError:  # Windows
            return None, "unavailable"
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process_rss"
