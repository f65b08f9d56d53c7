"""Command line: train, evaluate, predict, tasks, export."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation.metrics import PRESETS


def _anchors(recipe_path: Path) -> list[Path]:
    """Where relative task folders are looked for: the working folder, then the recipe's project."""
    return [Path.cwd(), recipe_path.resolve().parent, recipe_path.resolve().parent.parent]


def cmd_train(args: argparse.Namespace) -> None:
    from t2t_mtl.recipe import load_recipe
    from t2t_mtl.training import train

    recipe = load_recipe(args.recipe, args.overrides)
    summary = train(recipe, _anchors(Path(args.recipe)), resume=args.resume, overwrite=args.overwrite)
    if summary is not None:
        held_out = [t["task"] for t in summary["tasks"] if t["held_out"]]
        print(f"\nResults: {recipe.output_dir}/results.md")
        print("Next:")
        print(f"  t2t-mtl evaluate {recipe.output_dir}")
        example = held_out[0] if held_out else summary["tasks"][0]["task"]
        print(f"  t2t-mtl predict {recipe.output_dir} --task {example} --input ROWS.jsonl --output predictions.jsonl")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from t2t_mtl.evaluation.report import to_markdown
    from t2t_mtl.evaluation.runner import evaluate_run

    summary = evaluate_run(args.run_dir, tasks=args.tasks, max_examples=args.max_examples,
                           metric_preset=args.metric_preset)
    if summary is not None:
        print(to_markdown(summary))


def _read_rows(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise T2TError(f"{path}, line {number}: corrupt JSON ({error.msg})") from error
    return rows


def cmd_predict(args: argparse.Namespace) -> None:
    from t2t_mtl.inference import Predictor, adhoc_task

    if args.instruction is not None:
        task, rows = adhoc_task(args.instruction), [{"text": args.text or ""}]
    elif args.task and args.input:
        task, rows = args.task, _read_rows(Path(args.input))
    else:
        raise T2TError("predict needs --task FILE_OR_NAME --input ROWS.jsonl, or --instruction TEXT --text TEXT")
    fit_rows = _read_rows(Path(args.fit_data))[: args.fit_examples] if args.fit_data else None
    if args.routing == "fit" and (fit_rows is None or len(fit_rows) < args.fit_examples):
        raise T2TError(f"--routing fit asks for {args.fit_examples} labelled rows (--fit-examples) but --fit-data "
                       f"gave {len(fit_rows or [])}")
    predictor = Predictor.from_run(args.run_dir)
    predictions = predictor.predict(task, rows, template=args.template, routing=args.routing, fit_rows=fit_rows)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps({**row, "prediction": prediction}, ensure_ascii=False) + "\n"
                              for row, prediction in zip(rows, predictions))
        print(f"wrote {len(predictions)} predictions to {args.output}")
    else:
        for prediction in predictions:
            print(prediction)


def cmd_tasks(args: argparse.Namespace) -> None:
    from t2t_mtl.task_commands import run_tasks_command

    run_tasks_command(args)


def cmd_export(args: argparse.Namespace) -> None:
    from t2t_mtl.modeling.export import export_run

    out = export_run(args.run_dir, Path(args.merge or args.out), merge=bool(args.merge), task=args.task,
                     routing=args.routing, instruction=args.instruction)
    loader = "AutoModelForSeq2SeqLM.from_pretrained" if args.merge else "PeftModel.from_pretrained(base_model, ...)"
    print(f"wrote {out}; load it with {loader}('{out}')")


def cmd_routing(args: argparse.Namespace) -> None:
    from t2t_mtl.modeling.routed.inspect import show_routing

    show_routing(args.run_dir, per_layer=args.layers, image=Path(args.png) if args.png else None)


class _SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser; with `intermixed`, positionals may follow options (`tasks validate -n 2 NAME`)."""

    def __init__(self, *args: Any, intermixed: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.intermixed = intermixed

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        if not self.intermixed:
            return super().parse_known_args(args, namespace)
        self.intermixed = False  # parse_known_intermixed_args calls back here, for plain parses
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self.intermixed = True


def build_parser() -> argparse.ArgumentParser:
    """The `t2t-mtl` argument parser."""
    parser = argparse.ArgumentParser(prog="t2t-mtl", description="Instruction-tuned multi-task seq2seq models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_SubcommandParser)

    p = sub.add_parser("train", help="train a recipe (also under `accelerate launch -m t2t_mtl train`)")
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument("overrides", nargs="*", help="dotted overrides such as train.lr=3e-4")
    p.add_argument("--resume", action="store_true", help="continue the run in output_dir from its latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete the run in output_dir and start again")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a run's trained weights on its tasks")
    p.add_argument("run_dir")
    p.add_argument("--tasks", nargs="+", help="task names or globs (default: the recipe's eval.tasks)")
    p.add_argument("--max-examples", type=int, help="cap on examples per task")
    p.add_argument("--metric-preset", choices=sorted(PRESETS),
                   help="score with another project's conventions (default: the recipe's eval.metric_preset)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="predict for rows of any task, seen or unseen")
    p.add_argument("run_dir")
    p.add_argument("--task", help="task file (.yaml) or the name of a task of the run")
    p.add_argument("--input", help="JSONL rows with the task's input columns")
    p.add_argument("--output", help="JSONL to write rows + prediction (default: print)")
    p.add_argument("--template", help="template id (default: the task's evaluation template)")
    p.add_argument("--instruction", help="an ad-hoc instruction instead of a task file")
    p.add_argument("--text", help="the input text for --instruction")
    p.add_argument("--routing", help="routed runs, unseen tasks: average | similar | fit | task=NAME")
    p.add_argument("--fit-data", help="labelled JSONL rows of the task for --routing fit")
    p.add_argument("--fit-examples", type=int, default=16, help="rows of --fit-data to fit on (default 16)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("tasks", help="list, show, validate and preview task files", intermixed=True)
    p.add_argument("action", choices=["list", "show", "validate", "preview"])
    p.add_argument("names", nargs="*", help="task names or globs (show/preview/validate)")
    p.add_argument("-n", type=int, default=3, help="rows to render per template (preview/validate)")
    p.add_argument("--task-dir", action="append", help="task folder (default: ./instructions)")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("export", help="write plain weights (--merge) or a plain LoRA adapter (--out) for serving")
    p.add_argument("run_dir")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--merge", metavar="OUT", help="fold the adapter into the backbone and save to OUT")
    target.add_argument("--out", metavar="OUT", help="save a PEFT adapter (routed runs: plain LoRA) to OUT")
    p.add_argument("--task", help="routed runs: fold this trained task's routing")
    p.add_argument("--routing", help="routed runs: average | similar | task=NAME")
    p.add_argument("--instruction", help="the new task's instruction, for --routing similar")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("routing", help="show a routed run's task x skill routing (and a heatmap PNG)")
    p.add_argument("run_dir")
    p.add_argument("--layers", action="store_true", help="also print every layer's routing")
    p.add_argument("--png", help="heatmap path (default RUN_DIR/plots/routing.png)")
    p.set_defaults(func=cmd_routing)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `t2t-mtl` and `python -m t2t_mtl`; user errors exit with status 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except T2TError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
