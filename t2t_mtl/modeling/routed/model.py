"""Build, load, route and merge routed adapters on a PEFT model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import ModulesToSaveWrapper
from transformers import PreTrainedModel

from t2t_mtl.errors import T2TError
from t2t_mtl.modeling.routed.config import RoutedLoraConfig
from t2t_mtl.modeling.routed.layer import RoutedLinear
from t2t_mtl.modeling.routed.routing import Routing, RoutingChannel, channel_call, skill_weights

ADAPTER = "default"


def routed_layers(model: torch.nn.Module) -> list[RoutedLinear]:
    """The routed layers of a model, in module order (their index in the routing stack)."""
    return [m for m in model.modules() if isinstance(m, RoutedLinear)]


def attach_routing(model: PeftModel) -> RoutingChannel:
    """Give every routed layer of `model` one shared routing channel (empty until a `routed_call`)."""
    layers = routed_layers(model)
    if not layers:
        raise T2TError("the model has no routed layers")
    config: RoutedLoraConfig = model.peft_config[ADAPTER]
    channel = RoutingChannel(layers, ADAPTER, config.n_tasks)
    for index, layer in enumerate(layers):
        layer.routing_channel = channel
        layer.layer_index = index
    return channel


def routing_channel(model: torch.nn.Module) -> RoutingChannel:
    """The routing channel of a routed model (or of a wrapper around one, such as DDP)."""
    layer = next((m for m in model.modules() if isinstance(m, RoutedLinear)), None)
    if layer is None or layer.routing_channel is None:
        raise T2TError("the model has no routed layers")
    return layer.routing_channel


@contextmanager
def routed_call(model: torch.nn.Module, routing: Routing) -> Iterator[None]:
    """Route one forward (and its backward) or one `generate` of `model` with `routing`.

    Every layer's weights are computed once, on entry (outside any checkpointed region, so
    gradient checkpointing recomputes layers with the same routing while the backward runs
    inside); on exit the model holds no routing, and a routed forward outside raises.
    """
    with channel_call(routing_channel(model), routing):
        yield


def build_routed_model(model: PreTrainedModel, config: RoutedLoraConfig) -> PeftModel:
    """Wrap a transformers model with a routed adapter (a PEFT LoRA adapter with routed layers)."""
    peft_model = get_peft_model(model, config)
    attach_routing(peft_model)
    return peft_model


def load_routed_model(model: PreTrainedModel, folder: Path, config: RoutedLoraConfig) -> PeftModel:
    """Load a routed adapter saved with `save_pretrained` onto its base model."""
    peft_model = PeftModel.from_pretrained(model, folder, config=config)
    attach_routing(peft_model)
    return peft_model


def skill_major_moments(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Hold skill-major the optimizer moments of every routed skill parameter that a checkpoint saved in an
    earlier layout, as loading holds the weights themselves: such a run resumes exactly."""
    state = getattr(optimizer, "optimizer", optimizer).state  # Accelerate wraps the torch optimizer
    for layer in routed_layers(model):
        for adapter in layer.skill_rank:
            for key, weight in layer.skill_tensors(adapter).items():
                moments = state.get(weight, {})
                for name, value in moments.items():
                    if torch.is_tensor(value) and value.numel() == weight.numel() and value.shape != weight.shape:
                        moments[name] = layer.skill_major(adapter, key, value).contiguous()


def task_weights(model: torch.nn.Module) -> torch.Tensor:
    """Every task's routing in eval mode: (tasks, layers, splits, skills), normalised."""
    with torch.no_grad():
        logits = routing_channel(model).logits().float()  # (layers, tasks, splits, skills)
        return skill_weights(logits, sample=False, temperature=1.0).transpose(0, 1)


def one_routing(model: torch.nn.Module, routing: Routing) -> tuple[torch.Tensor, int | None]:
    """The single routing of `routing` (weights (layers, splits, skills), task of its exclusive skills or None).

    `Routing.fixed(...)` is one routing; `Routing.tasks(ids)` is one when all ids are the same task.
    """
    if routing.weights is not None:
        return routing.weights, routing.task
    ids = sorted({int(i) for i in routing.task_ids.tolist()}) if routing.task_ids is not None else []
    if len(ids) != 1:
        raise T2TError(f"merging folds one routing into the weights: give one task, not task ids {ids}")
    return task_weights(model)[ids[0]], ids[0]


def merge_routed(model: PeftModel, routing: Routing) -> PreTrainedModel:
    """The base model with one routing of the skills folded into its weights (the adapter removed)."""
    weights, task = one_routing(model, routing)
    with torch.no_grad():
        for index, layer in enumerate(routed_layers(model)):
            base = layer.get_base_layer().weight
            base.add_(layer.routed_delta_weight(ADAPTER, weights[index], task).to(base.dtype))
    return model.unload()


def as_lora(model: PeftModel, routing: Routing) -> PeftModel:
    """A plain PEFT LoRA model (rank = skill rank) holding one routing's mix of the skills.

    The routed model is consumed: its base weights become the LoRA model's base.
    """
    weights, task = one_routing(model, routing)
    routed_config: RoutedLoraConfig = model.peft_config[ADAPTER]
    names = {id(m): n for n, m in model.named_modules()}
    with torch.no_grad():
        factors = {names[id(layer)]: layer.mixed_factors(ADAPTER, weights[index], task)
                   for index, layer in enumerate(routed_layers(model))}
    config = LoraConfig(r=routed_config.skill_rank, lora_alpha=routed_config.lora_alpha, lora_dropout=0.0,
                        target_modules=routed_config.target_modules, modules_to_save=routed_config.modules_to_save,
                        task_type="SEQ_2_SEQ_LM")
    plain = get_peft_model(model.unload(), config)
    with torch.no_grad():
        for name, target in plain.named_modules():
            if name in factors and not isinstance(target, ModulesToSaveWrapper):
                a_mix, b_mix = factors[name]
                target.lora_A[ADAPTER].weight.copy_(a_mix)
                target.lora_B[ADAPTER].weight.copy_(b_mix)
    return plain
