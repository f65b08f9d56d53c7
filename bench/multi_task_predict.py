"""Multi-task prediction: every row answered by several tasks in one generation vs one call per task.

Both answer the same rows with the same run, greedy, under the same constraints; the bench
checks that the answers are equal and prints (row, task) pairs per second, alternating the
ways (A B A B) and taking each one's median. The rows are answered N at a time for each N of
`--per-call` (1: each row as it arrives, MTI Bench's setting; 0: all rows in one call). With
`--composite TASK`, the tasks are that composite task's subtasks, the rows its evaluation rows,
and a third way asks the composite task itself (all answers in one target): its answers are
compared with the separate calls'.

    t2t-mtl train recipes/quickstart.yaml          # the run it reads (runs/quickstart)
    python bench/multi_task_predict.py --run runs/quickstart
    t2t-mtl train recipes/composite.yaml
    python bench/multi_task_predict.py --run runs/composite --composite banking/request
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import datasets
import torch

from t2t_mtl.inference import Predictor
from t2t_mtl.tasks import sources

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["demo/intent", "demo/ner", "demo/ner_places", "demo/relations"]
Answers = dict[str, list]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/quickstart")
    parser.add_argument("--rows", type=int, default=40, help="rows: demo/ner's evaluation sentences, or the "
                                                             "composite task's evaluation rows")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    parser.add_argument("--per-call", type=int, nargs="+", default=[1, 8, 0],
                        help="rows per call, one measurement each (0: all rows in one call)")
    parser.add_argument("--composite", help="a composite task of the run: compare it with its subtasks")
    args = parser.parse_args()
    torch.manual_seed(0)
    datasets.disable_progress_bars()
    predictor = Predictor.from_run(args.run)
    if args.composite:
        composite = predictor.task(args.composite)
        tasks = [part.name for part in composite.parts]
        rows = sources.load_rows(composite, "eval").select(range(args.rows)).to_list()
    else:
        tasks = args.tasks
        lines = (ROOT / "instructions/demo/data/ner.eval.jsonl").read_text(encoding="utf-8").splitlines()[: args.rows]
        rows = [{**row, "text": row["sentence"]} for row in map(json.loads, lines)]
    print(f"\n{len(rows)} rows x {len(tasks)} tasks ({', '.join(tasks)}) · run {args.run} · "
          f"eval.batch_size {predictor.recipe.eval.batch_size} · {args.repeats} repeats, medians")
    print(f"{'rows per call':>13}  {'way':<40} {'pairs/s':>8} {'ratio':>6}  answers equal to the separate calls'")
    for size in args.per_call:
        chunks = [rows[start : start + (size or len(rows))] for start in range(0, len(rows), size or len(rows))]
        for label, speed, ratio, equal in measure(predictor, tasks, chunks, args.composite, args.repeats):
            print(f"{size or len(rows):>13}  {label:<40} {speed:>8.1f} {ratio:>6.2f}  {equal} of {len(rows) * len(tasks)}")


def measure(predictor: Predictor, tasks: list[str], chunks: list[list[dict]], composite: str | None,
            repeats: int) -> list[tuple[str, float, float, int]]:
    """(way, pairs/s, ratio to the separate calls, answers equal to theirs) for each way of answering `chunks`."""

    def separate() -> Answers:
        return {task: [answer for chunk in chunks
                       for answer in predictor.answers(task, chunk, predictor.predict(task, chunk, progress=False))]
                for task in tasks}

    def together() -> Answers:
        answers = [row for chunk in chunks for row in predictor.predict_many(tasks, chunk, progress=False)]
        return {task: [row[task] for row in answers] for task in tasks}

    def one_target() -> Answers:
        answers = [answer for chunk in chunks for answer in
                   predictor.answers(composite, chunk, predictor.predict(composite, chunk, progress=False))]
        return {task: [prediction.answer[task] for prediction in answers] for task in tasks}

    ways: dict[str, tuple[str, Callable[[], Answers]]] = {
        "separate": ("one predict call per task", separate), "together": ("predict_many (one generation)", together)}
    if composite:
        ways["composite"] = (f"{composite} (one target)", one_target)
    times: dict[str, list[float]] = {name: [] for name in ways}
    outputs: dict[str, Answers] = {}
    for _ in range(repeats):
        for name, (_, way) in ways.items():
            start = time.perf_counter()
            outputs[name] = way()
            times[name].append(time.perf_counter() - start)
    pairs = sum(map(len, chunks)) * len(tasks)
    base = pairs / statistics.median(times["separate"])
    results = []
    for name, (label, _) in ways.items():
        speed = pairs / statistics.median(times[name])
        equal = sum(_answer(a) == _answer(b) for task in tasks
                    for a, b in zip(outputs["separate"][task], outputs[name][task]))
        results.append((label, speed, speed / base, equal))
    return results


def _answer(prediction: object) -> object:
    """A prediction's parsed answer (the composite way gives answers only)."""
    return getattr(prediction, "answer", prediction)


if __name__ == "__main__":
    main()
