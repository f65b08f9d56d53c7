"""Multi-task prediction: every row answered by several tasks in one generation vs one call per task.

Both answer the same rows with the same run, greedy, under the same constraints; the bench
checks that the answers are equal and prints (row, task) pairs per second, alternating the
two ways (A B A B) and taking each one's median.

    t2t-mtl train recipes/quickstart.yaml          # the run it reads (runs/quickstart)
    python bench/multi_task_predict.py --run runs/quickstart --rows 40 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from t2t_mtl.inference import Predictor

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["demo/intent", "demo/ner", "demo/ner_places", "demo/relations"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/quickstart")
    parser.add_argument("--rows", type=int, default=40, help="sentences of demo/ner's evaluation set")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    args = parser.parse_args()
    torch.manual_seed(0)
    predictor = Predictor.from_run(args.run)
    lines = (ROOT / "instructions/demo/data/ner.eval.jsonl").read_text(encoding="utf-8").splitlines()[: args.rows]
    rows = [{**row, "text": row["sentence"]} for row in map(json.loads, lines)]

    def separate() -> dict[str, list[str]]:
        return {task: predictor.predict(task, rows, progress=False) for task in args.tasks}

    def together() -> dict[str, list[str]]:
        answers = predictor.predict_many(args.tasks, rows, progress=False)
        return {task: [row[task].text for row in answers] for task in args.tasks}

    times: dict[str, list[float]] = {"separate": [], "together": []}
    outputs = {}
    for _ in range(args.repeats):
        for name, way in (("separate", separate), ("together", together)):
            start = time.perf_counter()
            outputs[name] = way()
            times[name].append(time.perf_counter() - start)
    pairs = len(rows) * len(args.tasks)
    equal = sum(a == b for task in args.tasks for a, b in zip(outputs["separate"][task], outputs["together"][task]))
    base = pairs / statistics.median(times["separate"])
    print(f"\n{len(rows)} rows x {len(args.tasks)} tasks ({', '.join(args.tasks)}) · run {args.run} · "
          f"eval.batch_size {predictor.recipe.eval.batch_size} · {args.repeats} repeats, medians")
    print(f"{'way':<34} {'pairs/s':>8} {'ratio':>6}")
    for name, label in (("separate", "one predict call per task"), ("together", "predict_many (one generation)")):
        speed = pairs / statistics.median(times[name])
        print(f"{label:<34} {speed:>8.1f} {speed / base:>6.2f}")
    print(f"equal answers: {equal} of {pairs}")


if __name__ == "__main__":
    main()
