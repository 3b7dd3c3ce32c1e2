"""kosum: experiment-tracked PEFT for Korean abstractive summarization."""

__version__ = "0.1.0"
