"""Bounded templates and YAML, read-only fields and labels, nulls in mapped columns, `--instruction` as text.

Each hostile case runs in its own subprocess, so that one case's time and memory (the
peak resident size, `ru_maxrss`) cannot hide another's; every one must be refused with a
T2TError naming the file and place in under 2 s and 200 MB.
"""

from __future__ import annotations

import json
import logging
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import datasets
import pytest
import yaml

from t2t_mtl.cli import main
from t2t_mtl.data import render_rows
from t2t_mtl.errors import T2TError
from t2t_mtl.inference import adhoc_task
from t2t_mtl.recipe import load_recipe
from t2t_mtl.tasks.schema import load_task_file
from t2t_mtl.tasks.sources import row_fields
from t2t_mtl.templates import compile_templates

from conftest import colour_rows, write_task

TESTS = Path(__file__).parent
ROOT = TESTS.parent
SECONDS, MEGABYTES = 2.0, 200
RESULT = "MEASURED "

# id: (template text, what the refusal says)
HOSTILE_TEMPLATES = {
    "exponent": ("{{ (7 ** (10 ** 8)) % 10 }}", "'**' would build an integer"),
    "string_repetition": ("{{ 'a' * 10**9 }}", "'*' would build"),
    "list_repetition": ("{{ [0] * 10**9 }}", "'*' would build"),
    "nested_ranges": ("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", "steps"),
    "big_range": ("{% for i in range(100000) %}{% endfor %}", "range() of 100,000 items"),
    "lipsum": ("{{ lipsum(n=10**6) }}", "'lipsum' is undefined"),
    "huge_output": ("{% for i in range(10000) %}{{ text * 100 }}{% endfor %}", "renders more than"),
    "literal_text_in_a_loop": ("{% set x %}{% for i in range(10000) %}" + "A" * 1000 + "{% endfor %}{% endset %}",
                               "renders more than"),
    "doubling": ("{% set x = text %}" + "{% set x = x ~ x %}" * 40 + "{{ x }}", "'~' would build"),
    "format_width": ("{{ '%1000000000s' | format(1) }}", "filter 'format' would build"),
    "filter_width": ("{{ text | center(1000000000) }}", "filter 'center' was given 1,000,000,000"),
    "str_method": ("{{ text.ljust(10**9) }}", "ljust() would build"),
    "nested_literals": ("".join(f"{{% set l{i + 1} = [{', '.join([f'l{i}'] * 10)}] %}}" for i in range(8))
                        .replace("l0", "text") + "{{ l8 }}", "a literal would build"),
    "recursion": ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "recursed too deeply"),
    "exponential_macro": ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
                          "ran for more than"),
    "deep_nesting": ("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "nests too deeply"),
}

BOMB = "\n".join(["name: toy/bomb", "domain: toy", "source:", "  path: bomb.jsonl", "  options:",
                  "    a: &a [x, x, x, x, x, x, x, x, x]",
                  *(f"    {b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")),
                  "templates: [{id: t, instruction: x, target: y}]", ""])
DEEP = f"name: toy/deep\ndomain: toy\nsource: {{path: deep.jsonl, options: {{a: {'[' * 5000}{']' * 5000}}}}}\n"


def measure(action: Callable[..., str], *args: str) -> None:
    """Run `action(*args)` and print its outcome, seconds and extra peak memory (MB) as one JSON line."""
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in bytes on macOS, KiB elsewhere
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    try:
        outcome = action(*args)
    except T2TError as error:
        outcome = f"T2TError: {error}"
    seconds = time.monotonic() - start
    megabytes = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * unit / 2**20
    print(RESULT + json.dumps({"outcome": outcome, "seconds": seconds, "megabytes": megabytes}))


def measured(action: str, *args: str) -> dict:
    """`measure` of this module's function `action` in a fresh Python process."""
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); import {Path(__file__).stem} as m; "
            f"m.measure(m.{action}, *sys.argv[1:])")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    assert lines, done.stdout + done.stderr
    return json.loads(lines[-1][len(RESULT):])


def assert_refused_quickly(result: dict, *named: str) -> None:
    assert result["outcome"].startswith("T2TError: ") or result["outcome"].startswith("exit 2"), result
    for part in named:
        assert part in result["outcome"], (part, result["outcome"])
    assert "None" not in result["outcome"].split("\n")[0] or "None" in named, result["outcome"]
    assert result["seconds"] < SECONDS, result
    assert result["megabytes"] < MEGABYTES, result


def hostile_task(folder: Path, template: str) -> Path:
    """A task file whose template 'hostile' has `template` as its instruction."""
    templates = [{"id": "hostile", "instruction": template, "input": "{{ text }}", "target": "{{ label }}"}]
    return write_task(folder, "toy/hostile", colour_rows(4), templates=templates)


def compile_and_render(task_file: str) -> str:
    """Load, compile and render one row of a task file; what the template rendered when nothing refused."""
    task = load_task_file(task_file)
    template = compile_templates(task)["hostile"]
    row = {"text": "hello world", "label": "red"}
    return "rendered: " + template.render(row_fields(task, row, task.label_space())).source[:100]


def cli(*argv: str) -> str:
    """Run `t2t-mtl ARGV`; its exit status and error line."""
    status = main(list(argv))
    return f"exit {status}"


def recipe_from(path: str) -> str:
    load_recipe(path)
    return "loaded"


@pytest.mark.parametrize("case", list(HOSTILE_TEMPLATES))
def test_hostile_template_is_refused_quickly_naming_file_template_and_field(tmp_path: Path, case: str) -> None:
    template, says = HOSTILE_TEMPLATES[case]
    task_file = hostile_task(tmp_path, template)
    result = measured("compile_and_render", str(task_file))
    assert_refused_quickly(result, str(task_file), "template 'hostile', field 'instruction'", says)


def test_constant_expressions_are_not_run_when_validating(tmp_path: Path) -> None:
    """Jinja folded constants when compiling: `tasks validate` used to hang on the exponent."""
    hostile_task(tmp_path, HOSTILE_TEMPLATES["exponent"][0])
    result = measured("cli", "tasks", "validate", "--task-dir", str(tmp_path), "-n", "1")
    assert_refused_quickly(result)  # exit 2: the row rendered with the template is refused


def test_validate_names_the_refused_template(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    hostile_task(tmp_path, HOSTILE_TEMPLATES["string_repetition"][0])
    assert main(["tasks", "validate", "--task-dir", str(tmp_path), "-n", "1"]) == 2
    out = capsys.readouterr().out
    assert "toy/hostile: " in out and "template 'hostile'" in out and "'*' would build" in out


@pytest.mark.parametrize("action", ["validate", "show"])
@pytest.mark.parametrize(("name", "text", "says"), [
    ("bomb", BOMB, "aliases (*name) expanded"),
    ("deep", DEEP, "nests more than 100 levels"),
])
def test_alias_bomb_and_deep_yaml_are_refused_by_the_cli(tmp_path: Path, action: str, name: str, text: str,
                                                         says: str) -> None:
    task_file = tmp_path / f"{name}.yaml"
    task_file.write_text(text, encoding="utf-8")
    argv = ["tasks", "--task-dir", str(tmp_path), action] if action == "show" else ["tasks", action, "--task-dir",
                                                                                     str(tmp_path)]
    result = measured("cli", *argv, *([f"toy/{name}"] if action == "show" else []))
    assert result["outcome"] == "exit 2", result
    assert result["seconds"] < SECONDS and result["megabytes"] < MEGABYTES, result
    with pytest.raises(T2TError, match=rf"task file {re.escape(str(task_file))}: refused, line \d+, column \d+: .*{re.escape(says)}"):
        load_task_file(task_file)


def test_alias_bomb_in_a_recipe_is_refused(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(BOMB.replace("name: toy/bomb", "output_dir: run"), encoding="utf-8")
    assert_refused_quickly(measured("recipe_from", str(recipe)), f"recipe {recipe}: refused", "aliases")


def test_yaml_anchors_within_the_bound_still_load(tmp_path: Path) -> None:
    task_file = tmp_path / "anchors.yaml"
    task_file.write_text("name: toy/anchors\ndomain: toy\nsource: {path: d.jsonl, options: {a: &a [1, 2], b: *a}}\n"
                         "templates: [{id: t, instruction: x, target: y}]\n", encoding="utf-8")
    assert load_task_file(task_file).source.options == {"a": [1, 2], "b": [1, 2]}


@pytest.mark.parametrize("value", ["[1", "{a: b", "'open"])
def test_broken_yaml_in_an_override_names_the_override(value: str) -> None:
    with pytest.raises(T2TError, match=rf"override 'train.lr={re.escape(value)}': the value is not valid YAML(?s:.*)quote it"):
        load_recipe(ROOT / "recipes" / "quickstart.yaml", [f"train.lr={value}"])


def test_templates_cannot_change_the_label_space(tmp_path: Path) -> None:
    task_file = hostile_task(tmp_path, "{{ labels.append('x') or '' }}{{ labels.sort() or '' }}")
    task = load_task_file(task_file)
    space = task.label_space()
    template = compile_templates(task)["hostile"]
    for _ in range(3):
        with pytest.raises(T2TError, match=r"template 'hostile', field 'instruction': .*the sandbox refused: "
                                           r"access to attribute 'append' of 'list' object is unsafe"):
            template.render(row_fields(task, {"text": "sky", "label": "blue"}, space))
    assert space == task.label_space() == ["red", "green", "blue"]


def test_read_only_filters_and_loops_still_work(tmp_path: Path) -> None:
    text = ("{{ labels | join(', ') }} | {{ labels | map('upper') | join('/') }} | {{ labels | sort | first }} | "
            "{% for e in entities | selectattr('type', 'eq', 'person') %}{{ loop.index }}:{{ e.name }} {% endfor %}| "
            "{{ entities | format_spans }} | {{ (labels + ['x']) | length }} {{ '%s-%s' % (1, 2) }} "
            "{{ '{}!'.format(text) }} {{ text ~ '?' }} {{ 2 ** 10 }} {{ '-' * 3 }} {{ {'a': 1}['a'] }}")
    task_file = hostile_task(tmp_path, text)
    task = load_task_file(task_file)
    row = {"text": "ann met bob", "label": "red"}
    fields = {**row_fields(task, row, task.label_space()),
              "entities": [{"name": "ann", "type": "person"}, {"name": "paris", "type": "place"}]}
    rendered = compile_templates(task)["hostile"].render(fields).source
    assert rendered.split("\n")[0] == ("red, green, blue | RED/GREEN/BLUE | blue | 1:ann | person: ann; place: paris | "
                                      "4 1-2 ann met bob! ann met bob? 1024 --- 1")


def null_task(tmp_path: Path, nulls: str | None = None) -> Path:
    task_file = write_task(tmp_path, "toy/nulls", colour_rows(2))
    if nulls is not None:
        spec = yaml.safe_load(task_file.read_text(encoding="utf-8"))
        spec["source"]["nulls"] = nulls
        task_file.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return task_file


@pytest.mark.parametrize("with_target", [True, False])
@pytest.mark.parametrize("row", [{"text": None, "label": "red"}, {"label": "red"}])
def test_a_null_in_a_mapped_column_is_refused_by_row_and_column(tmp_path: Path, with_target: bool, row: dict) -> None:
    """Training inputs read "Message: None" and predict rows without their input were predicted, silently."""
    task_file = null_task(tmp_path)
    task = load_task_file(task_file)
    rows = datasets.Dataset.from_list([{"text": "sky", "label": "blue"}, row])  # a missing key becomes null
    with pytest.raises(T2TError) as error:
        render_rows(task, 0, rows, seed=None, template_id="ask", with_target=with_target)
    message = str(error.value)
    assert f"{task_file} (task toy/nulls): template 'ask', field 'input': row 1 (from 0)" in message
    assert "column 'text' is null or missing" in message and "source.nulls: empty" in message


def test_a_null_is_never_rendered_as_none_and_can_be_read_with_a_fallback(tmp_path: Path) -> None:
    task = load_task_file(null_task(tmp_path))
    fields = row_fields(task, {"text": None, "label": "red"}, task.label_space())
    with pytest.raises(T2TError, match=r"field 'input': a row \{\"text\": null, \"label\": \"red\"\}: column 'text'"):
        compile_templates(task)["ask"].render(fields)
    spec = task.templates[0].model_copy(update={"input": "{{ text | default('-') }}{{ 'x' if text is defined }}"})
    template = compile_templates(task.model_copy(update={"templates": [spec]}))["ask"]
    assert template.render(fields).source.endswith("\n-")


def test_nulls_empty_renders_empty_text_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    task = load_task_file(null_task(tmp_path, "empty"))
    rows = datasets.Dataset.from_list([{"text": "sky", "label": "blue"}, {"text": None, "label": "red"}])
    with caplog.at_level(logging.WARNING):
        rendered = render_rows(task, 0, rows, seed=None, template_id="plain")
    assert rendered["source"] == ["Colour?\nText: sky", "Colour?\nText:"]
    assert "column 'text' is null or missing in some rows; they render it as empty text" in caplog.text


def test_nulls_accepts_only_error_or_empty(tmp_path: Path) -> None:
    with pytest.raises(T2TError, match="source.nulls"):
        load_task_file(null_task(tmp_path, "skip"))


@pytest.mark.parametrize("instruction", ["{{ 7*7 }}", "{% raw %}x {# y", "a {b} }} {{ c", "{{ '{' }}"])
def test_an_adhoc_instruction_is_plain_text(instruction: str) -> None:
    template = compile_templates(adhoc_task(instruction))["adhoc"]
    assert template.render({"text": "the input"}).source == f"{instruction}\nthe input"


@pytest.mark.parametrize("argv", [["--instruction", "Tag it."], ["--text", "ann met bob"]])
def test_instruction_and_text_go_together(tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str]) -> None:
    assert main(["predict", str(tmp_path / "no_run"), *argv]) == 2
    assert "--instruction and --text go together" in capsys.readouterr().err
