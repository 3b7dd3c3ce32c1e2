"""Make ``generate()`` use the trained prefix of a PEFT prefix-tuned seq2seq model (T5).

Why this module exists
----------------------
With transformers 5.24 and peft 0.21.2, prefix tuning on T5 is silently dropped inside
``generate()``: the decoded text is that of the base model with the adapter disabled, while the
teacher-forced training forward does use the prefix. ``docs/methods-prefix-generation.md`` has the
details; in short:

* transformers renamed the cache argument of ``T5ForConditionalGeneration.forward`` from
  ``past_key_values`` to ``cache`` (the old name survives as an alias through ``@deprecate_kwarg``),
  and ``GenerationMixin.prepare_inputs_for_generation`` passes the cache that ``generate()`` made
  under ``"cache"``;
* ``PeftModelForSeq2SeqLM.prepare_inputs_for_generation`` still adds the prefix cache under
  ``"past_key_values"``; the forward receives both names and ``deprecate_kwarg`` keeps ``cache``,
  discarding the prefix (the ``Both `past_key_values` and `cache` are set`` warning);
* with ``use_cache=False`` the first step has no ``cache``, so the alias carries the prefix in, but
  T5 returns the cache it was handed, ``generate()`` feeds it back as ``cache`` on the next step,
  and from then on a stale cache (prefix plus old decoder keys/values) wins over the fresh prefix.

The training forward is unaffected because PEFT passes only ``past_key_values=``, which the alias
maps onto ``cache``.

The fix
-------
:func:`enable_prefix_generation` gives the PEFT model an instance-level
``prepare_inputs_for_generation``. ``PeftModelForSeq2SeqLM.generate`` already installs
``self.prepare_inputs_for_generation`` on the base model for the duration of ``generate()``, so this
is the hook PEFT itself designed; nothing in transformers or in PEFT's classes is patched. It is
set on the instance, as PEFT's own ``disable_adapter`` does with the same attribute, so only models
that opt in change: other PEFT models in the process keep stock behaviour, and ``disable_adapter``
still swaps it out and back.

The replacement builds the prefix cache with PEFT's own ``get_prompt`` (an ``EncoderDecoderCache``
whose self-attention layers hold the prefix keys/values for every row, beams and returned sequences
included, and whose cross-attention cache is empty with ``is_updated`` false, so each layer fills
it from the encoder output on the first step) and passes it under the argument name the base
model's forward actually takes. It does so while the cache is still empty (the prefill step) and,
with ``use_cache=False``, on every step, because then each step re-runs the full decoder input and
needs a fresh prefix instead of the stale cache. A 2-D ``decoder_attention_mask`` gets ones
prepended for the prefix positions, as PEFT's forward does. The result is the same computation as
the teacher-forced forward pass, step by step.
"""

from __future__ import annotations

import inspect
from typing import Any, TypeVar

import torch
from peft import PeftModelForSeq2SeqLM
from peft.utils import PeftType

__all__ = ["enable_prefix_generation"]

ModelT = TypeVar("ModelT", bound=torch.nn.Module)


class _PrefixAwarePrepareInputs:
    """``prepare_inputs_for_generation`` for a PEFT prefix-tuned seq2seq model.

    A callable object rather than a closure: ``copy.deepcopy`` of the model then copies it together
    with the model it points to (a closure would keep pointing at the original model), and its type
    marks a model as already enabled.
    """

    def __init__(self, model: PeftModelForSeq2SeqLM) -> None:
        self.model = model
        # ``cache`` on transformers with the renamed argument, ``past_key_values`` before it.
        forward_params = inspect.signature(model.get_base_model().forward).parameters
        self.cache_kwarg = "cache" if "cache" in forward_params else "past_key_values"

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        model = self.model
        peft_config = model.active_peft_config
        if peft_config.peft_type != PeftType.PREFIX_TUNING:
            # Another adapter type was made active after enabling: PEFT's own logic applies.
            return PeftModelForSeq2SeqLM.prepare_inputs_for_generation(model, *args, **kwargs)

        model_inputs: dict[str, Any] = model.base_model_prepare_inputs_for_generation(
            *args, **kwargs
        )
        cache = model_inputs.get(self.cache_kwarg)
        # An empty cache means the prefill step (it holds the prefix from then on). Without caching,
        # every step re-runs the whole decoder input, and whatever cache T5 handed back last step
        # is stale: each step gets a fresh prefix, exactly like the teacher-forced forward.
        needs_prefix = (
            not model_inputs.get("use_cache", True) or cache is None or cache.get_seq_length() == 0
        )
        if needs_prefix:
            batch_size = model_inputs["decoder_input_ids"].shape[0]
            model_inputs[self.cache_kwarg] = model.get_prompt(batch_size)

        decoder_attention_mask = model_inputs.get("decoder_attention_mask")
        if decoder_attention_mask is not None and decoder_attention_mask.dim() == 2:
            prefix_mask = decoder_attention_mask.new_ones(
                decoder_attention_mask.shape[0], peft_config.num_virtual_tokens
            )
            model_inputs["decoder_attention_mask"] = torch.cat(
                (prefix_mask, decoder_attention_mask), dim=1
            )
        return model_inputs


def _has_prefix_adapter(model: torch.nn.Module) -> bool:
    """Whether ``model`` is a PEFT seq2seq model holding at least one prefix-tuning adapter."""
    return isinstance(model, PeftModelForSeq2SeqLM) and any(
        config.peft_type == PeftType.PREFIX_TUNING for config in model.peft_config.values()
    )


def enable_prefix_generation(model: ModelT) -> ModelT:
    """Make ``model.generate()`` apply the trained prefix at every decoding step.

    Safe to call unconditionally after building any method: models that are not PEFT seq2seq
    models with a prefix-tuning adapter (LoRA, prompt tuning, IA3, a plain transformers model) are
    returned untouched, and a second call on an enabled model does nothing. The fix lives on the
    instance only, so a model re-created by ``PeftModel.from_pretrained`` must be enabled again.
    Call ``generate`` on the PEFT model itself, not on ``model.get_base_model()``.

    Args:
        model: Any model; only a ``PeftModelForSeq2SeqLM`` with a prefix-tuning adapter is changed.

    Returns:
        The same object, for chaining.
    """
    if not _has_prefix_adapter(model) or isinstance(
        model.__dict__.get("prepare_inputs_for_generation"), _PrefixAwarePrepareInputs
    ):
        return model
    # Instance attribute, read by ``PeftModelForSeq2SeqLM.generate`` when it swaps the base model's
    # ``prepare_inputs_for_generation``; the class and other instances are left alone.
    model.prepare_inputs_for_generation = _PrefixAwarePrepareInputs(model)
    return model
