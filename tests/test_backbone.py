"""Loading a pretrained base the way kosum does keeps pko-t5's own output layer.

pko-t5 (and lcw99's summarisation model built on it) is a T5 v1.1: its checkpoint holds an
`lm_head.weight` separate from `shared.weight` (`tie_word_embeddings: false`). transformers 5.x
declares every T5 tied and unties only when a checkpoint holds both tensors with different
values; a regression there would silently decode with the input embedding instead.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from kosum.models.backbone import ModelSpec, load_model
from tiny_models import tiny_t5


def test_separate_output_layer_loads_and_survives_a_save(tmp_path: Path):
    checkpoint = tmp_path / "pko-t5-like"
    tiny_t5(60, tie_word_embeddings=False).save_pretrained(checkpoint)
    weights = load_file(checkpoint / "model.safetensors")
    weights["lm_head.weight"] = torch.randn(weights["shared.weight"].shape)  # its own layer
    save_file(weights, checkpoint / "model.safetensors", metadata={"format": "pt"})

    model = load_model(ModelSpec(name_or_path=str(checkpoint)), tokenizer=None)
    assert torch.equal(model.lm_head.weight, weights["lm_head.weight"])
    assert torch.equal(model.shared.weight, weights["shared.weight"])
    assert not model.config.scale_decoder_outputs  # T5 v1.1: no output scaling

    model.save_pretrained(tmp_path / "saved")  # as `model/` and `merged/` are written
    saved = load_file(tmp_path / "saved" / "model.safetensors")
    assert torch.equal(saved["lm_head.weight"], weights["lm_head.weight"])
