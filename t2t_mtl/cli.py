"""Command line: train, evaluate, predict, tasks, export, merge, compare, report, routing."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from t2t_mtl.errors import T2TError, disk_full
from t2t_mtl.evaluation.metrics import PRESETS
from t2t_mtl.textfiles import writable_folder


def _anchors(recipe_path: Path) -> list[Path]:
    """Where relative task folders are looked for: the working folder, then the recipe's project."""
    return [Path.cwd(), recipe_path.resolve().parent, recipe_path.resolve().parent.parent]


def cmd_train(args: argparse.Namespace) -> None:
    """Train a recipe; SIGTERM/SIGINT end it with one line and status 128 + the signal (143, 130)."""
    try:
        from t2t_mtl.recipe import load_recipe
        from t2t_mtl.training import Stopped, train

        recipe = load_recipe(args.recipe, args.overrides)
    except KeyboardInterrupt:  # Ctrl-C before the run installed its handlers
        print("stopped by SIGINT before training started; nothing was written", file=sys.stderr)
        raise SystemExit(130) from None
    try:
        summary = train(recipe, _anchors(Path(args.recipe)), resume=args.resume, overwrite=args.overwrite,
                        recipe_file=Path(args.recipe), allow_changed=args.allow_changed)
    except Stopped as stop:
        if os.environ.get("RANK", "0") == "0":  # one line, from the main process of a launch
            print(stop.line(shlex.join(["t2t-mtl", "train", args.recipe, *args.overrides])), file=sys.stderr)
        raise SystemExit(stop.exit_status) from None
    if summary is not None:
        held_out = [t.task for t in summary.tasks if t.held_out]
        print(f"\nResults: {recipe.output_dir}/results.md")
        print("Next:")
        print(f"  t2t-mtl evaluate {recipe.output_dir}")
        example = held_out[0] if held_out else summary.tasks[0].task
        print(f"  t2t-mtl predict {recipe.output_dir} --task {example} --input ROWS.jsonl --output predictions.jsonl")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from t2t_mtl.evaluation.report import to_markdown
    from t2t_mtl.evaluator import evaluate_run

    _check_routing_flags(args)
    fit_rows = _read_rows(Path(args.fit_data), "--fit-data") if args.fit_data else None
    if args.routing == "fit" and not fit_rows:
        raise T2TError("evaluate --routing fit learns the held-out tasks' routing from labelled rows: give "
                       "--fit-data ROWS.jsonl")
    summary = evaluate_run(args.run_dir, tasks=args.tasks, max_examples=args.max_examples,
                           metric_preset=args.metric_preset, routing=args.routing, fit_rows=fit_rows, top_k=args.top_k,
                           checkpoint=args.checkpoint, constrain=args.constrain)
    if summary is not None:
        print(to_markdown(summary))


def _check_routing_flags(args: argparse.Namespace) -> None:
    """Refuse --fit-data and --top-k without the routing mode that reads them."""
    if args.fit_data and args.routing not in ("fit", "fit-unlabelled"):
        raise T2TError("--fit-data is read only with --routing fit or fit-unlabelled (to fit a routed run's routing "
                       "for the task).")
    if args.top_k is not None and args.routing != "arrow":
        raise T2TError("--top-k is read only with --routing arrow (the skills each token mixes).")


def _read_rows(path: Path, option: str) -> list[dict]:
    """The rows of a JSONL file given as `option`: one JSON object per line, each column of one type."""
    from t2t_mtl.tasks.importers.common import ColumnKinds, jsonl_objects
    from t2t_mtl.textfiles import not_text

    rows: list[dict] = []
    kinds = ColumnKinds(path)
    try:
        for number, row in jsonl_objects(path):
            rows.append(row)
            kinds.add(row, f"line {number}")
    except UnicodeDecodeError as error:
        raise not_text(path, error) from error
    except OSError as error:
        raise T2TError(f"{option} {path}: {error.strerror}. Give a JSONL file of rows (one JSON object per line).") \
            from error
    if not rows:
        raise T2TError(f"{option} {path} holds no rows. Give one JSON object per line, such as {{\"text\": \"...\"}}.")
    return rows


def _output_file(args: argparse.Namespace) -> Path | None:
    """`--output`, checked (and its folder made) before any generation, so that no prediction is lost to it."""
    if not args.output:
        return None
    path = Path(args.output)
    if path.is_dir():
        raise T2TError(f"--output {path} is a folder; give a file name, such as {path / 'predictions.jsonl'}.")
    if path.resolve() in [Path(given).resolve() for given in (args.input, args.fit_data) if given]:
        raise T2TError(f"--output {path} is also an input of this command; writing it would replace those rows. "
                       f"Choose another file.")
    writable_folder(path, "--output")
    return path


def _write_predictions(path: Path, lines: list[str]) -> None:
    """Write through a temporary file renamed over `path` (never half a file); print the lines if that fails."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temp.open("w", encoding="utf-8") as handle:
            handle.writelines(lines)
        os.replace(temp, path)
    except OSError as error:
        temp.unlink(missing_ok=True)
        sys.stdout.writelines(lines)
        raise T2TError(f"could not write --output {path} ({error.strerror}); the {len(lines)} predictions were "
                       f"printed to standard output instead.") from error


def cmd_predict(args: argparse.Namespace) -> None:
    from t2t_mtl.constraints import check_mode
    from t2t_mtl.inference import Predictor, adhoc_task

    if (args.instruction is None) != (args.text is None):
        raise T2TError("--instruction and --text go together: the instruction (plain text) and the input it is "
                       "about (--text '' for none). For a task's rows use --task FILE_OR_NAME --input ROWS.jsonl.")
    if args.instruction is not None and (args.task or args.input):
        raise T2TError("give either --instruction TEXT --text TEXT (an ad-hoc task) or --task FILE_OR_NAME --input "
                       "ROWS.jsonl, not both.")
    if args.instruction is not None:
        tasks, rows = [adhoc_task(args.instruction)], [{"text": args.text}]
    elif args.task and args.input:
        tasks, rows = args.task, _read_rows(Path(args.input), "--input")
    else:
        raise T2TError("predict needs --task FILE_OR_NAME --input ROWS.jsonl, or --instruction TEXT --text TEXT")
    if len(tasks) > 1 and (args.template or args.routing in ("fit", "fit-unlabelled") or args.fit_data):
        raise T2TError("several --task answer with each task's evaluation template and zero-shot routing: --template, "
                       "--routing fit/fit-unlabelled and --fit-data apply to one --task")
    _check_routing_flags(args)
    output = _output_file(args)
    fit_rows = _read_rows(Path(args.fit_data), "--fit-data")[: args.fit_examples] if args.fit_data else None
    if args.routing == "fit" and (fit_rows is None or len(fit_rows) < args.fit_examples):
        raise T2TError(f"--routing fit asks for {args.fit_examples} labelled rows (--fit-examples) but --fit-data "
                       f"gave {len(fit_rows or [])}")
    overrides = {key: value for key, value in (("arrow_top_k", args.top_k), ("constrain", args.constrain)) if value}
    predictor = Predictor.from_run(args.run_dir, eval_overrides=overrides, checkpoint=args.checkpoint)
    specs = [predictor.task(task) for task in tasks]  # unknown names fail here, naming the closest
    if args.constrain:
        for spec in specs:
            check_mode([spec], args.constrain)
    if len(specs) == 1:
        texts = predictor.predict(specs[0], rows, template=args.template, routing=args.routing, fit_rows=fit_rows)
        records = [{**row, "prediction": p.text, "answer": p.answer}
                   for row, p in zip(rows, predictor.answers(specs[0], rows, texts))]
    else:
        records = [{**row, "predictions": {name: p.to_dict() for name, p in answers.items()}}
                   for row, answers in zip(rows, predictor.predict_many(specs, rows, routing=args.routing))]
    for name, (mode, losses) in predictor.routing_plan.fits.items():
        objective = "loss" if mode == "fit" else "mean entropy of its answers"
        print(f"{mode}: the routing of {name} was fitted in {len(losses)} steps; {objective} per step: "
              f"{' '.join(f'{loss:.3f}' for loss in losses)}", file=sys.stderr)
    if output is not None:
        _write_predictions(output, [json.dumps(record, ensure_ascii=False) + "\n" for record in records])
        print(f"wrote {len(records)} predictions to {output}")
    elif len(specs) == 1:
        for record in records:
            print(record["prediction"])
    else:
        for record in records:
            print(json.dumps({name: p["text"] for name, p in record["predictions"].items()}, ensure_ascii=False))


def cmd_tasks(args: argparse.Namespace) -> None:
    from t2t_mtl.task_commands import run_tasks_command

    run_tasks_command(args)


def cmd_export(args: argparse.Namespace) -> None:
    from t2t_mtl.export import check_out_folder, export_model
    from t2t_mtl.inference import Predictor

    target = Path(args.merge or args.out)
    if target.exists() and not target.is_dir():
        raise T2TError(f"{'--merge' if args.merge else '--out'} {target} is a file; export writes a folder there. "
                       f"Give a folder path.")
    check_out_folder(target)  # before the model loads
    predictor = Predictor.from_run(args.run_dir, device="cpu", checkpoint=args.checkpoint)
    out = export_model(predictor.model, predictor.tokenizer, predictor.run, predictor.routing_plan, target,
                       merge=bool(args.merge), task=args.task, routing=args.routing, instruction=args.instruction)
    loader = "AutoModelForSeq2SeqLM.from_pretrained" if args.merge else "PeftModel.from_pretrained(base_model, ...)"
    print(f"wrote {out}; load it with {loader}('{out}')")


def cmd_merge(args: argparse.Namespace) -> None:
    from t2t_mtl.composition.merge import MergeSettings, merge_runs

    fit_rows = _read_rows(Path(args.fit_data), "--fit-data") if args.fit_data else None
    settings = MergeSettings(method=args.method, weights=args.weights, scale=args.scale, density=args.density,
                             seed=args.seed, fit_rows=fit_rows, fit_task=args.fit_task, fit_steps=args.fit_steps)
    out = Path(args.out)
    record = merge_runs([Path(run) for run in args.runs], out, settings)
    density = f", density {record['density']}" if record["density"] is not None else ""
    weights = f" (coefficients {', '.join(f'{c:g}' for c in record['coefficients'])})" if record["coefficients"] else ""
    print(f"merged {len(args.runs)} runs by {record['method']}{density}{weights} into {out}: {len(record['tasks'])} tasks, "
          f"stored as {record['stored_as']}")
    print(f"Next:\n  t2t-mtl evaluate {out}")


def cmd_compare(args: argparse.Namespace) -> None:
    from t2t_mtl.evaluation.compare import Comparison
    from t2t_mtl.evaluation.report import read_report
    from t2t_mtl.run_dir import RunDir

    if len(args.runs) < 2:
        raise T2TError("compare needs at least two run folders (the first is the reference of the differences)")
    for run in args.runs:
        RunDir(run).recipe()  # "not a run folder" before any report is read
    names = [Path(run).name for run in args.runs]
    labels = names if len(set(names)) == len(names) else list(args.runs)
    table = Comparison(labels, [read_report(Path(run)) for run in args.runs]).to_markdown()
    print(table, end="")
    if args.out:
        out = Path(args.out)
        writable_folder(out, "--out")
        try:
            out.write_text(table, encoding="utf-8")
        except OSError as error:
            raise T2TError(f"could not write --out {out} ({error.strerror}); the tables are printed above") from error
        print(f"wrote {out}", file=sys.stderr)


def cmd_report(args: argparse.Namespace) -> None:
    from t2t_mtl.reporting.page import write_report

    page = write_report([Path(run) for run in args.runs], Path(args.out) if args.out else None)
    print(f"wrote {page} (open it in a browser), {page.with_suffix('.md')} and the figures in {page.parent / 'plots'}")


def cmd_routing(args: argparse.Namespace) -> None:
    from t2t_mtl.inference import Predictor
    from t2t_mtl.modeling.routed.inspect import show_routing

    predictor = Predictor.from_run(args.run_dir, device="cpu")
    image = Path(args.png) if args.png else predictor.run.root / "plots" / "routing.png"
    try:
        show_routing(predictor.model, list(predictor.task_table.values()), image, per_layer=args.layers)
    except T2TError as error:
        raise T2TError(f"{predictor.run.root} trained adapter.type: {predictor.recipe.adapter.type}: {error}") from None


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


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got '{text}'")
    return int(text)


def _checkpoint(text: str) -> str:
    """An argparse type: best, last or step-N."""
    if text in ("best", "last") or (text.startswith("step-") and text.removeprefix("step-").isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"choose best, last or step-N (such as step-500), got '{text}'")


def _checkpoint_option(parser: argparse.ArgumentParser, note: str = "") -> None:
    """The --checkpoint option of the commands that load a run's weights."""
    parser.add_argument("--checkpoint", type=_checkpoint, help="which weights: last (final/, else the latest checkpoint; the default), "
                                             "best (train.keep_best) or step-N" + (f"; {note}" if note else ""))


def _constrain_option(parser: argparse.ArgumentParser, note: str = "") -> None:
    """The --constrain option of the commands that generate."""
    parser.add_argument("--constrain", choices=["none", "labels", "schema", "substrings"],
                        help="what decoding may write (default eval.constrain, labels): labels (label tasks: only their "
                             "labels), schema (also typed spans' types), substrings (also spans: only runs of the "
                             "input), none" + (f"; {note}" if note else ""))


def build_parser() -> argparse.ArgumentParser:
    """The `t2t-mtl` argument parser."""
    parser = argparse.ArgumentParser(prog="t2t-mtl", description="Instruction-tuned multi-task seq2seq models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_SubcommandParser)

    p = sub.add_parser("train", help="train a recipe (also under `accelerate launch -m t2t_mtl train`)",
                       intermixed=True)
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument("overrides", nargs="*", help="dotted overrides such as train.lr=3e-4 (before or after flags)")
    run_mode = p.add_mutually_exclusive_group()
    run_mode.add_argument("--resume", action="store_true",
                          help="continue the run in output_dir from its latest checkpoint")
    run_mode.add_argument("--overwrite", action="store_true",
                          help="replace the run in output_dir (it is deleted once the new run has made its first step)")
    p.add_argument("--allow-changed", action="store_true",
                   help="--resume even though templates or data changed since the checkpoint (the changes are listed)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a run's trained weights on its tasks")
    p.add_argument("run_dir")
    p.add_argument("--tasks", nargs="+", help="task names or globs (default: the recipe's eval.tasks)")
    p.add_argument("--max-examples", type=_positive, help="cap on examples per task")
    p.add_argument("--metric-preset", choices=sorted(PRESETS),
                   help="score with another project's conventions (default: the recipe's eval.metric_preset)")
    p.add_argument("--routing", help="routed runs: route the tasks the run did not train by average | similar | fit "
                                     "| fit-unlabelled (on their evaluation inputs) | arrow | task=NAME; the report "
                                     "goes to RUN_DIR/routing/MODE/")
    p.add_argument("--fit-data", help="JSONL rows to fit on: labelled for --routing fit; for fit-unlabelled, inputs "
                                      "only (default: the evaluation inputs)")
    p.add_argument("--top-k", type=_positive, help="--routing arrow: skills each token mixes (default eval.arrow_top_k)")
    _checkpoint_option(p, "the report then goes to RUN_DIR/evaluations/CHECKPOINT/")
    _constrain_option(p, "the report then goes to RUN_DIR/constrain/MODE/")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="predict for rows of any task, seen or unseen")
    p.add_argument("run_dir")
    p.add_argument("--task", action="append", help="task file (.yaml) or the name of a task of the run; repeat it to "
                                                   "answer every row by several tasks in one generation")
    p.add_argument("--input", help="JSONL rows with the task's input columns")
    p.add_argument("--output", help="JSONL to write rows + prediction, its folder made if need be (default: print)")
    p.add_argument("--template", help="template id (default: the task's evaluation template)")
    p.add_argument("--instruction", help="an ad-hoc instruction instead of a task file")
    p.add_argument("--text", help="the input text for --instruction")
    p.add_argument("--routing",
                   help="routed runs, unseen tasks: average | similar | fit | fit-unlabelled | arrow | task=NAME")
    p.add_argument("--fit-data", help="JSONL rows of the task to fit on: labelled for --routing fit; for "
                                      "fit-unlabelled, inputs only (default: the --input rows)")
    p.add_argument("--fit-examples", type=_positive, default=16, help="rows of --fit-data to fit on (default 16)")
    p.add_argument("--top-k", type=_positive, help="--routing arrow: skills each token mixes (default eval.arrow_top_k)")
    _checkpoint_option(p)
    _constrain_option(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("tasks", help="list, show, validate and preview task files", intermixed=True)
    p.add_argument("action", choices=["list", "show", "validate", "preview"])
    p.add_argument("names", nargs="*", help="task names or globs (show/preview/validate)")
    p.add_argument("-n", type=_positive, default=3, help="rows to render per template (preview/validate)")
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
    _checkpoint_option(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("merge", help="merge runs of one backbone into a new run: LoRA task vectors (task arithmetic, "
                                     "TIES, DARE) or routed skill inventories",
                       intermixed=True)
    p.add_argument("runs", nargs="+", help="run folders to merge")
    p.add_argument("--method",
                   help="LoRA runs: linear (the default; weighted sum, weights 1/n) | task_arithmetic (λ 0.3) | ties "
                        "(density 0.2) | dare_linear (density 0.5, λ 0.3) | dare_ties (density 0.5) | adamerging "
                        "(task arithmetic with per-layer λ fitted on --fit-data); routed runs: concat (the default; "
                        "skill inventories side by side)")
    p.add_argument("--weights", type=float, nargs="+", help="one weight per run (default 1/n for linear, else 1)")
    p.add_argument("--lambda", dest="scale", type=float, help="λ: scales every weight (default per method, above)")
    p.add_argument("--density", type=float, help="ties/dare: the fraction of each task vector kept")
    p.add_argument("--seed", type=int, default=0, help="dare: the seed of its random drops (default 0)")
    p.add_argument("--fit-data", help="adamerging: unlabelled JSONL rows of a task to fit per-layer coefficients on")
    p.add_argument("--fit-task", help="adamerging: the rows' task, a task of the runs or a task file (default: the "
                                      "runs' one held-out task)")
    p.add_argument("--fit-steps", type=_positive, default=30, help="adamerging: optimisation steps (default 30)")
    p.add_argument("--out", required=True, help="the new run folder")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("compare", help="runs side by side: per task, per domain, seen and held out, with differences")
    p.add_argument("runs", nargs="+", help="run folders (the first is the reference of the differences)")
    p.add_argument("--out", help="also write the Markdown tables to this file")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("report", help="an HTML page (and its Markdown twin) of runs' curves, scores, mixture, "
                                      "truncation, throughput and routing; works while a run trains")
    p.add_argument("runs", nargs="+", help="run folders (several: drawn side by side)")
    p.add_argument("--out", help="the report's folder (default: the run folder; needed for several runs)")
    p.set_defaults(func=cmd_report)

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
        return _refuse(error)
    except (OSError, RuntimeError) as error:  # a full disk is the user's to fix; other errors are bugs
        full = disk_full(error, _written_folder(args), _RETRY.get(args.command, ""))
        if full is None:
            raise
        return _refuse(full)
    except KeyboardInterrupt:
        print(f"stopped by Ctrl-C: t2t-mtl {args.command} did not finish", file=sys.stderr)
        return 130
    return 0


def _refuse(error: T2TError) -> int:
    """Print a user error as one `error:` message; the exit status of user errors."""
    print(f"error: {error}", file=sys.stderr)
    return 2


_RETRY = {"train": "; the checkpoints written before are intact: continue with --resume"}


def _written_folder(args: argparse.Namespace) -> str | None:
    """Where a command writes: the run folder (train, evaluate), --output's folder, or export's folder."""
    if args.command == "train":
        from t2t_mtl.recipe import load_recipe

        try:
            return load_recipe(args.recipe, args.overrides).output_dir
        except T2TError:
            return None
    if args.command == "predict":
        return str(Path(args.output).parent) if args.output else None
    return getattr(args, "merge", None) or getattr(args, "out", None) or getattr(args, "run_dir", None)
