"""Configuration of routed LoRA adapters (Poly, MHR, C-Poly) as a PEFT LoRA config."""

from __future__ import annotations

from dataclasses import dataclass, field

from peft import LoraConfig
from torch import nn


@dataclass
class RoutedLoraConfig(LoraConfig):
    """A LoRA config whose adapter is an inventory of routed skills.

    The shared skills are one LoRA of rank `n_skills × skill_rank` to PEFT, which creates,
    saves and loads them as LoRA weights; each routed layer holds them skill-major ((S, in, r)
    and (S, r, out)) and adds per-task routing logits, and for C-Poly per-task exclusive
    skills. `r` is derived from `n_skills` and `skill_rank`.
    """

    n_tasks: int = field(default=1, metadata={"help": "rows of the routing table (task ids 0..n_tasks-1)"})
    n_skills: int = field(default=8, metadata={"help": "shared skills (LoRAs) per layer"})
    skill_rank: int = field(default=8, metadata={"help": "rank of each skill"})
    n_splits: int = field(default=1, metadata={"help": "routing heads per layer; > 1 is MHR"})
    n_exclusive_skills: int = field(default=0, metadata={"help": "skills owned by each task; > 0 is C-Poly"})
    routing_temperature: float = field(default=1.0, metadata={"help": "relaxed-Bernoulli temperature in training"})
    sample_routing: bool = field(default=True, metadata={"help": "sample relaxed-Bernoulli routing in training"})

    def __post_init__(self) -> None:
        self.r = self.n_skills * self.skill_rank
        super().__post_init__()
        from t2t_mtl.modeling.routed.layer import RoutedLinear

        self._register_custom_module({nn.Linear: RoutedLinear})

    @property
    def skills_per_task(self) -> int:
        """Skills a known task routes over: the shared ones plus its exclusive ones."""
        return self.n_skills + self.n_exclusive_skills
