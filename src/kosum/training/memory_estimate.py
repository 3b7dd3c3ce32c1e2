"""How much memory a training run needs, before anything is loaded: `kosum-estimate`.

Weights, gradients and optimiser state follow from parameter counts. Activations are not
guessed from a formula: the run's model, adapted by its method, does one forward pass on the
meta device (shapes only, no memory, no weights read) at the run's worst-case batch (every
sequence at its maximum length), and the tensors autograd saves for the backward pass are
counted as they are saved. The backward pass then needs working memory on top (gradients of the
activations, the logits' softmax and its gradient) while it frees those tensors:
`BACKWARD_FACTOR` covers it, measured on CPU (a real step's growth beyond its weights was
1.21x to 1.44x the counted tensors at three shapes; tests/test_memory_estimate.py checks the
totals against measured peaks). Mixed bf16 keeps most activations in bf16, so they are counted
at half; weights stay fp32. The count follows the attention path that runs on the meta device
(the math path, which keeps each layer's attention matrices): on a GPU, SDPA's memory-efficient
kernels keep less, so there the activations are an upper bound. A freshly built T5 shares its
output layer with the embedding (transformers 5.x), as the count does; pko-t5-large's checkpoint
keeps a separate one (51.6M parameters, 197 MiB more in fp32).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from kosum.methods.factory import as_method
from kosum.models.backbone import model_skeleton
from kosum.training.config_checks import stand_in_model
from kosum.training.optimizers import build_optimizer

MIB = 2**20
BACKWARD_FACTOR = 1.3
HALF_ACTIVATION_PRECISIONS = {"bf16-mixed", "bf16", "bf16-true", "16-mixed"}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training step needs on its device, by kind (per process under DDP)."""

    total_params: int
    trainable_params: int
    weights: int
    gradients: int
    optimizer_state: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer_state + self.activations

    def lines(self, gpu_memory_gb: float | None) -> list[str]:
        rows = [
            ("weights", self.weights),
            ("gradients", self.gradients),
            ("optimizer state", self.optimizer_state),
            ("activations", self.activations),
            ("total", self.total),
        ]
        lines = [
            f"parameters            {self.total_params:>15,}",
            f"trainable parameters  {self.trainable_params:>15,}",
        ]
        lines += [f"{name:<21} {size / MIB:>11,.0f} MiB" for name, size in rows]
        if gpu_memory_gb is not None:
            fits = self.total <= gpu_memory_gb * 2**30
            lines.append(
                f"fits a {gpu_memory_gb:g} GiB GPU: {'yes' if fits else 'no'} "
                f"({self.total / 2**30:.1f} GiB, before the CUDA context)"
            )
        return lines


def estimate_memory(cfg: DictConfig) -> MemoryEstimate:
    """The memory of one training step of `cfg` (a composed `kosum-train` config)."""
    method = as_method(instantiate(cfg.peft))
    skeleton = model_skeleton(instantiate(cfg.model))
    with torch.device("meta"):
        model = method.apply(copy.deepcopy(skeleton))
    parameters = list(model.parameters())
    trainable = [p for p in parameters if p.requires_grad]
    precision = str(cfg.trainer.get("precision", "32-true"))
    weight_bytes = 2 if precision in {"bf16-true", "16-true"} else 4
    saved = saved_activation_bytes(
        model, cfg.data.batch_size, cfg.data.max_source_length, cfg.data.max_target_length
    )
    if precision in HALF_ACTIVATION_PRECISIONS:
        saved //= 2
    trainable_count = sum(p.numel() for p in trainable)
    return MemoryEstimate(
        total_params=sum(p.numel() for p in parameters),
        trainable_params=trainable_count,
        weights=sum(p.numel() for p in parameters) * weight_bytes,
        gradients=trainable_count * weight_bytes if method.trains else 0,
        optimizer_state=(
            int(optimizer_states_per_parameter(cfg) * trainable_count * 4) if method.trains else 0
        ),
        activations=int(saved * BACKWARD_FACTOR) if method.trains else 0,
    )


def saved_activation_bytes(
    model: torch.nn.Module, batch_size: int, source_length: int, target_length: int
) -> int:
    """Bytes of the tensors autograd saves for backward in one training forward pass of
    `model` (on the meta device) at this batch shape; parameters and tensors saved twice are
    counted once. No attention mask: a batch without padding, the worst case (and transformers'
    mask builder reads values, which meta tensors do not have)."""
    parameters = {id(p) for p in model.parameters()}
    kept: dict[int, torch.Tensor] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        base = tensor._base if tensor._base is not None else tensor
        if id(tensor) not in parameters and id(base) not in parameters:
            kept.setdefault(id(tensor), tensor)  # kept alive, so no id is reused
        return tensor

    was_training = model.training
    model.train()
    try:
        source = torch.zeros(batch_size, source_length, dtype=torch.long, device="meta")
        target = torch.zeros(batch_size, target_length, dtype=torch.long, device="meta")
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            logits = model(input_ids=source, decoder_input_ids=target).logits
            torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten())
    finally:
        model.train(was_training)
    return sum(tensor.numel() * tensor.element_size() for tensor in kept.values())


def optimizer_states_per_parameter(cfg: DictConfig) -> float:
    """fp32 values the run's optimiser keeps per trained parameter (AdamW: 2), found by taking
    one step on a stand-in whose trained matrices are 64 x 64: any optimiser `optim` names is
    measured, not looked up."""
    model = stand_in_model(width=64, rank=64)
    trained = [p for p in model.parameters() if p.requires_grad]
    for parameter in trained:
        parameter.grad = torch.ones_like(parameter)
    optimizer = build_optimizer(instantiate(cfg.optim), model)
    optimizer.step()
    stored = sum(
        value.numel()
        for state in optimizer.state.values()
        for value in state.values()
        if isinstance(value, torch.Tensor) and value.numel() > 1
    )
    return stored / sum(p.numel() for p in trained)
