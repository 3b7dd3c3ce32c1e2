"""Inference: reading documents to summarise and generating their summaries in batches."""

from kosum.errors import InputError
from kosum.inference.batched import GenerationResult, generate_summaries
from kosum.inference.inputs import InputDocuments, read_inputs

__all__ = ["GenerationResult", "InputDocuments", "InputError", "generate_summaries", "read_inputs"]
