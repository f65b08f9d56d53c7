"""Routed adapters vs PEFT: a layer-level table of the exact formulations, then the end-to-end one.

Layers: one targeted linear (d_model → d_model, batch × L tokens), forward + backward with
per-example routings (training with sampled routing) and forward alone (a decoding step),
for every formulation of `t2t_mtl.modeling.routed.formulations` and the one the rule
chooses, against a PEFT LoRA linear of the same rank, over L ∈ {1, 32, 256}, S ∈ {4, 8}
skills and splits ∈ {1, 8}.

Training (forward + backward + AdamW step, same model, batch and targets): ours (Poly, MHR,
C-Poly) vs PEFT Poly / MHR vs PEFT LoRA. Generation (greedy, fixed length): base model,
our routed adapter merged for one task, routed with one task, routed with mixed tasks,
PEFT Poly, PEFT LoRA unmerged. Each configuration runs in its own process, so its peak
memory (GPU: allocated; CPU: resident set) is its own. Weights are random (from a T5
config), which changes nothing in the speed.

    python bench/routed_adapters.py                          # CPU: a T5-small-size model
    python bench/routed_adapters.py --only layers            # the layer table alone
    python bench/routed_adapters.py --size base --bf16 --batch 32 --source 256 --target 64   # GPU
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time

import torch
from peft import LoraConfig, PolyConfig, get_peft_model
from transformers import T5Config, T5ForConditionalGeneration

from t2t_mtl.modeling.routed import (
    RoutedLoraConfig,
    Routing,
    build_routed_model,
    merge_routed,
    routed_call,
    routed_layers,
)
from t2t_mtl.modeling.routed.formulations import FORMULATIONS, choose
from t2t_mtl.step_log import peak_memory_mb

SIZES = {"small": {"d_model": 512, "d_ff": 2048, "d_kv": 64, "num_heads": 8, "num_layers": 6},
         "base": {"d_model": 768, "d_ff": 3072, "d_kv": 64, "num_heads": 12, "num_layers": 12}}
TARGETS = ["q", "k", "v", "o", "wi", "wo"]
N_TASKS = 8
TRAINING = ["peft-lora", "peft-poly", "peft-mhr", "ours-poly", "ours-mhr", "ours-cpoly"]
GENERATION = ["base", "ours-merged", "ours-routed-single", "ours-routed-mixed", "peft-poly", "peft-lora"]


def build(name: str, args: argparse.Namespace) -> torch.nn.Module:
    """The model of one configuration, on the benchmark device and dtype."""
    torch.manual_seed(0)
    config = T5Config(vocab_size=32128, dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                      **SIZES[args.size])
    model = T5ForConditionalGeneration(config)
    kind = name.rsplit("-", 1)[-1]
    if name.startswith("peft-lora"):
        model = get_peft_model(model, LoraConfig(r=args.rank, lora_alpha=16, target_modules=TARGETS))
    elif name.startswith("peft-"):
        splits = args.splits if kind == "mhr" else 1
        model = get_peft_model(model, PolyConfig(r=args.rank, n_skills=args.skills, n_splits=splits,
                                                 n_tasks=N_TASKS, target_modules=TARGETS))
    elif name.startswith("ours-"):
        splits = args.splits if kind == "mhr" else 1
        model = build_routed_model(model, RoutedLoraConfig(
            n_tasks=N_TASKS, n_skills=args.skills, skill_rank=args.rank, n_splits=splits,
            n_exclusive_skills=1 if kind == "cpoly" else 0, lora_alpha=16, target_modules=TARGETS))
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    return model.to(args.device, dtype=dtype)


def inputs(args: argparse.Namespace, length: int) -> torch.Tensor:
    return torch.randint(2, 32000, (args.batch, length), device=args.device)


def call(model: torch.nn.Module, name: str, tasks: torch.Tensor, method: str, formulation: str | None = None,
         **kwargs):
    """Run forward or generate with the configuration's way of passing task ids."""
    if name.startswith("ours-") and name != "ours-merged":
        with routed_call(model, Routing.tasks(tasks, formulation)):
            return getattr(model, method)(**kwargs)
    if name.startswith(("peft-poly", "peft-mhr")):
        return getattr(model.base_model, method)(task_ids=tasks.to(kwargs["input_ids"].device), **kwargs)
    return getattr(model, method)(**kwargs)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_training(name: str, args: argparse.Namespace) -> dict[str, float]:
    model = build(name, args)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    source, labels = inputs(args, args.source), inputs(args, args.target)
    tasks = torch.arange(args.batch) % N_TASKS
    autocast = torch.autocast(device_type=args.device.split(":")[0], dtype=torch.bfloat16, enabled=args.bf16)
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            sync(args.device)
            start = time.perf_counter()
        with autocast:
            loss = call(model, name, tasks, "forward", args.formulation, input_ids=source, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync(args.device)
    seconds = time.perf_counter() - start
    tokens = args.steps * args.batch * (args.source + args.target)
    return {"tokens_per_s": tokens / seconds, "peak_memory_mb": peak_memory_mb(torch.device(args.device))}


@torch.no_grad()
def bench_generation(name: str, args: argparse.Namespace) -> dict[str, float]:
    kind = {"ours-merged": "ours-poly", "ours-routed-single": "ours-poly", "ours-routed-mixed": "ours-poly"}
    model = build(kind.get(name, name), args)
    model.eval()
    tasks = torch.arange(args.batch) % N_TASKS if name.endswith("mixed") else torch.zeros(args.batch, dtype=torch.long)
    if name == "ours-merged":
        model = merge_routed(model, Routing.tasks(torch.tensor([0])))
    source = inputs(args, args.source)
    settings = {"input_ids": source, "max_new_tokens": args.new_tokens, "min_new_tokens": args.new_tokens,
                "do_sample": False}
    for _ in range(2):
        call(model, name, tasks, "generate", args.formulation, **settings)
    sync(args.device)
    start = time.perf_counter()
    for _ in range(args.repeats):
        call(model, name, tasks, "generate", args.formulation, **settings)
    sync(args.device)
    seconds = time.perf_counter() - start
    return {"tokens_per_s": args.repeats * args.batch * args.new_tokens / seconds}


LAYER_SHAPES = [(tokens, skills, splits) for tokens in (1, 32, 256) for skills in (4, 8) for splits in (1, 8)]
LAYER_NAMES = ["peft-lora", *FORMULATIONS, "chosen"]


def layer_of(name: str, skills: int, splits: int, args: argparse.Namespace) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(the PEFT model, its one adapted linear) of a layer configuration."""
    torch.manual_seed(0)
    block = torch.nn.Sequential(torch.nn.Linear(SIZES[args.size]["d_model"], SIZES[args.size]["d_model"]))
    if name == "peft-lora":
        model = get_peft_model(block, LoraConfig(r=args.rank, lora_alpha=16, target_modules=["0"]))
        layer = model.base_model.model[0]
    else:
        model = build_routed_model(block, RoutedLoraConfig(n_tasks=N_TASKS, n_skills=skills, skill_rank=args.rank,
                                                           n_splits=splits, lora_alpha=16, target_modules=["0"],
                                                           init_lora_weights=False))
        layer = routed_layers(model)[0]
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    return model.to(args.device, dtype=dtype), layer


def bench_layer(name: str, shape: tuple[int, int, int], args: argparse.Namespace) -> dict[str, float]:
    """Microseconds of a training forward + backward and of an inference forward of one layer."""
    tokens, skills, splits = shape
    model, layer = layer_of(name, skills, splits, args)
    model.train()
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    x = torch.randn(args.batch, tokens, SIZES[args.size]["d_model"], device=args.device, dtype=dtype)
    tasks = torch.arange(args.batch) % N_TASKS
    forced = None if name in ("peft-lora", "chosen") else name

    def once(grad: bool) -> None:
        with torch.set_grad_enabled(grad):
            out = layer(x.detach().requires_grad_(grad))
            if grad:
                out.float().square().mean().backward()

    # One routing per call of the whole model: resolving it is not the layer's cost, so the call spans the loop
    # (inference keeps its mixed factors for the call, as over the decoding steps of one `generate`). The
    # routing logits are frozen so that the resolved weights can serve every step.
    for layer_routing in getattr(layer, "lora_routing", {}).values():
        layer_routing.requires_grad_(False)
    scope = routed_call(model, Routing.tasks(tasks, forced)) if name != "peft-lora" else contextlib.nullcontext()
    timings = {}
    with scope:
        for grad, key in ((True, "train_us"), (False, "step_us")):
            for _ in range(args.warmup):
                once(grad)
            repeats = max(args.layer_repeats, 4096 // tokens)
            sync(args.device)
            start = time.perf_counter()
            for _ in range(repeats):
                once(grad)
            sync(args.device)
            timings[key] = (time.perf_counter() - start) / repeats * 1e6
    return timings


def print_layer_table(args: argparse.Namespace) -> None:
    d = SIZES[args.size]["d_model"]
    print(f"layer {d}→{d}, batch {args.batch}, rank {args.rank}; training: forward + backward, per-example sampled "
          f"routings; step: forward without gradients (one decoding step)")
    header = " ".join(f"{n:>11}" for n in LAYER_NAMES[1:])
    print(f"{'L':>4} {'S':>2} {'Q':>2} {'mode':>5} {'LoRA µs':>9} {header}   (speed vs PEFT LoRA; chosen: rule's pick)")
    for shape in LAYER_SHAPES:
        results = {name: run_one(args, "layer", name, shape) for name in LAYER_NAMES}
        tokens, skills, splits = shape
        for key, mode, grad in (("train_us", "train", True), ("step_us", "step", False)):
            lora = results["peft-lora"][key]
            pick = choose(args.batch, grad)
            cells = " ".join(f"{lora / results[n][key]:>10.2f}x" for n in LAYER_NAMES[1:])
            print(f"{tokens:>4} {skills:>2} {splits:>2} {mode:>5} {lora:>9.0f} {cells}   {pick}")
    print()


def run_one(args: argparse.Namespace, mode: str, name: str, shape: tuple[int, int, int] | None = None
            ) -> dict[str, float]:
    layer = ["--shape", *map(str, shape)] if shape else []
    command = [sys.executable, __file__, "--one", mode, name, *layer, *sys.argv[1:]]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--source", type=int, default=128)
    parser.add_argument("--target", type=int, default=32)
    parser.add_argument("--skills", type=int, default=4)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--splits", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layer-repeats", type=int, default=20)
    parser.add_argument("--only", choices=["layers", "end-to-end"])
    parser.add_argument("--formulation", choices=FORMULATIONS, help="force one routed formulation end to end")
    parser.add_argument("--one", nargs=2, metavar=("MODE", "NAME"), help=argparse.SUPPRESS)
    parser.add_argument("--shape", nargs=3, type=int, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    if args.one:
        mode, name = args.one
        if mode == "layer":
            print(json.dumps(bench_layer(name, tuple(args.shape), args)))
        else:
            print(json.dumps((bench_training if mode == "train" else bench_generation)(name, args)))
        return
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"T5-{args.size} size (random weights) · {device} · {'bf16' if args.bf16 else 'fp32'} · batch {args.batch} × "
          f"({args.source}+{args.target}) · {args.skills} skills of rank {args.rank}, MHR {args.splits} heads, "
          f"LoRA rank {args.rank} · targets {','.join(TARGETS)}\n")
    if args.only != "end-to-end":
        print_layer_table(args)
    if args.only == "layers":
        return
    train = {name: run_one(args, "train", name) for name in TRAINING}
    lora, poly = train["peft-lora"]["tokens_per_s"], train["peft-poly"]["tokens_per_s"]
    print(f"{'training':<22} {'tokens/s':>10} {'vs LoRA':>8} {'vs PEFT Poly':>13} {'peak MB':>9}")
    for name, result in train.items():
        speed = result["tokens_per_s"]
        print(f"{name:<22} {speed:>10.0f} {speed / lora:>7.2f}x {speed / poly:>12.2f}x {result['peak_memory_mb']:>9.0f}")
    generation = {name: run_one(args, "generate", name) for name in GENERATION}
    base, unmerged = generation["base"]["tokens_per_s"], generation["peft-lora"]["tokens_per_s"]
    print(f"\n{'generation':<22} {'tokens/s':>10} {'vs base':>8} {'vs PEFT LoRA':>13}")
    for name, result in generation.items():
        speed = result["tokens_per_s"]
        print(f"{name:<22} {speed:>10.0f} {speed / base:>7.2f}x {speed / unmerged:>12.2f}x")


if __name__ == "__main__":
    main()
