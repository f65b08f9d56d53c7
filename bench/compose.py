"""Compose without retraining, on the offline quickstart: merged single-task runs, and zero-shot routings.

1. Trains one LoRA run per trained demo task (the quickstart recipe, its schedule split over
   the tasks: `--steps / 5` steps each, the held-out task evaluated too) and the joint
   quickstart run (`--steps`), merges the single-task runs with every method of
   `t2t-mtl merge` (AdaMerging fits on the held-out task's unlabelled inputs; `concat` joins
   the runs as the skills of one Poly run), evaluates each merged run, and prints the per-task
   primary scores; then the same for two of them (intent + code).
2. Trains the joint Poly quickstart, and evaluates its held-out task, and that of the joined
   single-task runs, under every zero-shot routing (`evaluate --routing MODE`; `fit` learns on the held-out rows that are not
   evaluated, `fit-unlabelled` on the evaluated inputs themselves, without their labels).

Every step goes through the CLI; runs already finished under `--out` are reused, so an
interrupted bench continues where it stopped.

    python bench/compose.py                        # about 45 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from t2t_mtl.composition.merge import LORA_METHODS

ROOT = Path(__file__).resolve().parents[1]
TRAINED = ("demo/biomed", "demo/code", "demo/intent", "demo/ner", "demo/relations")
HELD_OUT = "demo/ner_places"
HELD_OUT_ROWS = ROOT / "instructions" / "demo" / "data" / "ner_places.eval.jsonl"
EVALUATED = 40  # the quickstarts' eval.max_examples: the first 40 held-out rows are scored
ROUTINGS = ("average", "similar", "fit", "fit-unlabelled", "arrow")


def cli(*args: str) -> None:
    """Run one `t2t-mtl` command; stop the bench with its error output when it fails."""
    done = subprocess.run([sys.executable, "-m", "t2t_mtl", *args], check=False, cwd=ROOT, capture_output=True,
                          text=True)
    if done.returncode:
        sys.exit(f"t2t-mtl {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def train(out: Path, steps: int, tasks: list[str] | None = None, recipe: str = "quickstart") -> Path:
    """A quickstart run of `steps` steps into `out` (reused when it finished before)."""
    if not (out / "results.json").is_file():
        overrides = [f"train.max_steps={steps}", f"train.warmup={max(1, steps // 15)}", "train.eval_every=null",
                     f"train.save_every={steps}", f"output_dir={out}"]
        if tasks:
            overrides.append(f"tasks=[{', '.join(tasks)}]")
        cli("train", str(ROOT / "recipes" / f"{recipe}.yaml"), *overrides, "--overwrite")
    return out


def merged(runs: list[Path], method: str, out: Path, unlabelled: Path) -> Path:
    """The evaluated merge of `runs` by `method` (reused when it was evaluated before)."""
    if not (out / "results.json").is_file():
        if out.exists():
            sys.exit(f"{out} holds an unfinished merge: remove it and run the bench again")
        fit = ["--fit-data", str(unlabelled)] if method == "adamerging" else []
        cli("merge", *map(str, runs), "--method", method, *fit, "--out", str(out))
        cli("evaluate", str(out))
    return out


def routed(run: Path, mode: str, labelled: Path) -> Path:
    """The report of `run` with its held-out task routed by `mode` (reused when it exists)."""
    report = run / "routing" / mode
    if not (report / "results.json").is_file():
        cli("evaluate", str(run), "--routing", mode, *(["--fit-data", str(labelled)] if mode == "fit" else []))
    return report


def scores(run: Path) -> dict[str, float]:
    """Task -> primary score of a run's (or a routing report's) results.json."""
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    return {task["task"]: task["scores"][task["primary"]] for task in results["tasks"]}


def held_out_rows(out: Path) -> tuple[Path, Path]:
    """(the evaluated held-out inputs without labels, the held-out rows not evaluated, with labels)."""
    rows = [json.loads(line) for line in HELD_OUT_ROWS.read_text(encoding="utf-8").splitlines()]
    unlabelled, labelled = out / "held_out_inputs.jsonl", out / "held_out_fit.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    unlabelled.write_text("".join(json.dumps({"sentence": r["sentence"]}) + "\n" for r in rows[:EVALUATED]))
    labelled.write_text("".join(json.dumps(r) + "\n" for r in rows[EVALUATED:]))
    return unlabelled, labelled


def print_table(title: str, columns: dict[str, dict[str, float]], tasks: list[str]) -> None:
    """A Markdown table: one row per task, one column per run."""
    print(f"\n{title}\n")
    print("| task | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for task in tasks:
        label = f"{task} (held out)" if task == HELD_OUT else task
        print(f"| {label} | " + " | ".join(f"{column[task]:.1f}" for column in columns.values()) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "compose")
    parser.add_argument("--steps", type=int, default=1500, help="the joint runs' steps (each single run: a fifth)")
    args = parser.parse_args()
    unlabelled, labelled = held_out_rows(args.out)
    singles = [train(args.out / "single" / task.split("/")[1], args.steps // len(TRAINED), [task, HELD_OUT])
               for task in TRAINED]
    columns = {"single-task": {}, "joint": scores(train(args.out / "joint", args.steps))}
    columns.update({method: scores(merged(singles, method, args.out / "merged" / method, unlabelled))
                    for method in (*LORA_METHODS, "concat")})
    columns["single-task"] = {task: scores(run)[task] for task, run in zip(TRAINED, singles)}
    columns["single-task"][HELD_OUT] = sum(scores(run)[HELD_OUT] for run in singles) / len(singles)
    print(f"{args.steps} steps of batch 4 in all (single-task runs: {args.steps // len(TRAINED)} each); primary "
          f"score per task on {EVALUATED} examples. Single-task on the held-out task: the mean of the five runs.")
    print_table("Merged single-task LoRA runs", columns, [*TRAINED, HELD_OUT])
    seen = {name: sum(column[t] for t in TRAINED) / len(TRAINED) for name, column in columns.items()}
    print("| mean of seen | " + " | ".join(f"{value:.1f}" for value in seen.values()) + " |")
    pair = [singles[TRAINED.index("demo/intent")], singles[TRAINED.index("demo/code")]]
    pairs = {method: scores(merged(pair, method, args.out / "pair" / method, unlabelled))
             for method in ("linear", "task_arithmetic", "ties", "concat")}
    print_table("Two single-task runs merged: intent + code", {"single-task": columns["single-task"], **pairs},
                ["demo/intent", "demo/code"])
    poly = train(args.out / "joint_poly", args.steps, recipe="quickstart_poly")
    for title, run in (("the joint Poly quickstart", poly),
                       ("the single-task runs joined as skills (merge --method concat)", args.out / "merged" / "concat")):
        modes = {mode: scores(routed(run, mode, labelled)) for mode in ROUTINGS}
        print_table(f"The held-out task on {title}, by zero-shot routing", modes, [HELD_OUT])


if __name__ == "__main__":
    main()
