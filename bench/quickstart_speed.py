"""Training speed of the routed quickstarts against the LoRA quickstart, read from their own `log.jsonl`.

Every recipe trains `--steps` steps through the CLI in its own process, with LoRA's batch
and rank (`train.batch_size=4 adapter.rank=16`), no checkpoints and no evaluation until
the end (8 examples). The median of the logged training tokens/s (one record per
`train.log_every` steps) is compared with LoRA's. `--repeats k` runs the recipes k times
in turn and takes the median over all their records, which damps a noisy machine.

`--alternate` builds the four recipes' trainers in one process instead and runs their
steps in turn (step k of every recipe, then step k + 1): the same batches, and a machine
that drifts moves every recipe alike. It reports each recipe's median tokens per second of
`Trainer.train_step` (forward, backward, clipping, AdamW) after `--warmup` steps, and the
median of its forward + backward alone.

    python bench/quickstart_speed.py                 # 120 steps each, on CPU
    python bench/quickstart_speed.py --alternate     # one process, steps in turn
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("quickstart", "quickstart_poly", "quickstart_mhr", "quickstart_cpoly")


def overrides(steps: int, out: Path) -> list[str]:
    """LoRA's batch and rank, `steps` steps, no checkpoints and no evaluation until the end."""
    return ["train.batch_size=4", "adapter.rank=16", f"train.max_steps={steps}", "train.eval_every=null",
            "train.save_every=null", "eval.max_examples=8", f"output_dir={out}"]


def train_rates(recipe: str, steps: int, out: Path) -> list[float]:
    """The logged training tokens/s of one short run of `recipe`."""
    command = [sys.executable, "-m", "t2t_mtl", "train", str(ROOT / "recipes" / f"{recipe}.yaml"),
               *overrides(steps, out)]
    done = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{recipe} failed:\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [r["tokens_per_s"] for r in records if "tokens_per_s" in r]


def alternate(steps: int, warmup: int) -> None:
    """Every recipe's trainer in this process, stepping in turn; print per-step medians against LoRA's."""
    from t2t_mtl.losses import target_token_losses
    from t2t_mtl.recipe import load_recipe
    from t2t_mtl.training import Trainer

    rates: dict[str, list[float]] = {recipe: [] for recipe in RECIPES}
    passes: dict[str, list[float]] = {recipe: [] for recipe in RECIPES}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {recipe: Trainer(load_recipe(ROOT / "recipes" / f"{recipe}.yaml",
                                                overrides(steps, Path(tmp) / recipe)), [ROOT], overwrite=True)
                    for recipe in RECIPES}
        for step in range(steps):
            for recipe, trainer in trainers.items():
                start = time.perf_counter()
                tokens = trainer.train_step(step).tokens
                if step >= warmup:
                    rates[recipe].append(tokens / (time.perf_counter() - start))
            batch = trainers["quickstart"]._batch(trainers["quickstart"].plan.micro_batches(step, 0)[0])
            for recipe, trainer in trainers.items():  # forward + backward alone, on one shared batch
                start = time.perf_counter()
                with trainer.train_router.applied(batch["task_ids"]):
                    target_token_losses(trainer.model, batch, trainer.head)[0].sum().backward()
                trainer.optimizer.zero_grad(set_to_none=True)
                if step >= warmup:
                    passes[recipe].append(time.perf_counter() - start)
    print_table(f"median per-step tokens/s, steps {warmup + 1}–{steps}, recipes in turn in one process "
                "(batch 4, rank 16)", rates, passes)


def print_table(title: str, rates: dict[str, list[float]], passes: dict[str, list[float]] | None = None) -> None:
    """Every recipe's median tokens/s against LoRA's, and its median forward + backward time when measured."""
    lora = statistics.median(rates["quickstart"])
    print(title)
    print(f"{'recipe':<18} {'tokens/s':>9} {'vs LoRA':>8}" + (f" {'fwd+bwd ms':>11}" if passes else ""))
    for recipe in RECIPES:
        median = statistics.median(rates[recipe])
        extra = f" {statistics.median(passes[recipe]) * 1000:>11.1f}" if passes else ""
        print(f"{recipe:<18} {median:>9.0f} {median / lora:>7.2f}x{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--alternate", action="store_true", help="all recipes in one process, steps in turn")
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of the medians with --alternate")
    args = parser.parse_args()
    if args.alternate:
        alternate(args.steps, args.warmup)
        return
    rates: dict[str, list[float]] = {recipe: [] for recipe in RECIPES}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for recipe in RECIPES:
                rates[recipe] += train_rates(recipe, args.steps, Path(tmp) / f"{recipe}-{repeat}")
    print_table(f"median training tokens/s over {args.repeats} × {args.steps} steps (batch 4, rank 16)", rates)


if __name__ == "__main__":
    main()
