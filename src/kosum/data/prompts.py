"""Input prompts (`conf/prompt/*.yaml`): a template around the document and where it applies.

The seed added `불필요한 내용은 생략하고 핵심 내용을 간단하게 한줄 요약: {text}` at inference only
(`apply_at: inference`); sweeping `apply_at=train|inference|both` asks whether training with the
prompt helps. Evaluation (validation, test, prediction) counts as inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kosum.errors import InputError

Stage = Literal["train", "inference"]
APPLY_AT = ("train", "inference", "both")


@dataclass(frozen=True)
class PromptTemplate:
    template: str = "{text}"
    apply_at: str = "inference"

    def __post_init__(self) -> None:
        if "{text}" not in self.template:
            raise InputError(f"prompt.template must contain '{{text}}', got {self.template!r}")
        if self.apply_at not in APPLY_AT:
            raise InputError(f"prompt.apply_at must be one of {APPLY_AT}, got {self.apply_at!r}")

    def applies_to(self, stage: Stage) -> bool:
        return self.apply_at in (stage, "both")

    def format(self, text: str, stage: Stage) -> str:
        return self.template.replace("{text}", text) if self.applies_to(stage) else text
