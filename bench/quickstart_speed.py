"""Training speed of the routed quickstarts against the LoRA quickstart, read from their own `log.jsonl`.

Every recipe trains `--steps` steps through the CLI in its own process, with LoRA's batch
and rank (`train.batch_size=4 adapter.rank=16`), no checkpoints and no evaluation until
the end (8 examples). The median of the logged training tokens/s (one record per
`train.log_every` steps) is compared with LoRA's. `--repeats k` runs the recipes k times
in turn and takes the median over all their records, which damps a noisy machine.

    python bench/quickstart_speed.py                 # 120 steps each, on CPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("quickstart", "quickstart_poly", "quickstart_mhr", "quickstart_cpoly")


def train_rates(recipe: str, steps: int, out: Path) -> list[float]:
    """The logged training tokens/s of one short run of `recipe`."""
    overrides = ["train.batch_size=4", "adapter.rank=16", f"train.max_steps={steps}", "train.eval_every=null",
                 "train.save_every=null", "eval.max_examples=8", f"output_dir={out}"]
    command = [sys.executable, "-m", "t2t_mtl", "train", str(ROOT / "recipes" / f"{recipe}.yaml"), *overrides]
    done = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{recipe} failed:\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [r["tokens_per_s"] for r in records if "tokens_per_s" in r]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {recipe: [] for recipe in RECIPES}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for recipe in RECIPES:
                rates[recipe] += train_rates(recipe, args.steps, Path(tmp) / f"{recipe}-{repeat}")
    lora = statistics.median(rates["quickstart"])
    print(f"median training tokens/s over {args.repeats} × {args.steps} steps (batch 4, rank 16)")
    print(f"{'recipe':<18} {'tokens/s':>9} {'vs LoRA':>8}")
    for recipe in RECIPES:
        median = statistics.median(rates[recipe])
        print(f"{recipe:<18} {median:>9.0f} {median / lora:>7.2f}x")


if __name__ == "__main__":
    main()
