"""Inference: reading documents to summarise and generating their summaries in batches."""

from kosum.inference.batched import GenerationResult, generate_summaries
from kosum.inference.inputs import InputDocuments, InputError, read_inputs

__all__ = ["GenerationResult", "InputDocuments", "InputError", "generate_summaries", "read_inputs"]
