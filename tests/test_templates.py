"""Rendering: sandboxed Jinja, strict fields, errors that name the file, template and field."""

from pathlib import Path

import pytest

from t2t_mtl.errors import T2TError
from t2t_mtl.tasks.schema import TaskSpec, load_task_file
from t2t_mtl.templates import CompiledTemplate, compile_templates, template_hash


def make_task(**template) -> TaskSpec:
    spec = {"id": "t", "instruction": "Tag: {{ labels | join(', ') }}", "input": "{{ text }}",
            "target": "{{ entities | format_spans }}", **template}
    return TaskSpec(name="x/y", domain="x", source={"path": "d.jsonl"}, templates=[spec])


def test_render_joins_instruction_and_input_and_formats_target():
    task = make_task()
    example = compile_templates(task)["t"].render(
        {"text": "ann met bob", "labels": ["person"], "entities": [{"name": "ann", "type": "person"}]})
    assert example.source == "Tag: person\nann met bob"
    assert example.target == "person: ann"
    assert example.template_id == "t"


def test_syntax_error_names_template_field_and_line():
    with pytest.raises(T2TError, match=r"template 't', field 'input', line 2: Jinja syntax error"):
        compile_templates(make_task(input="ok\n{{ text "))


def test_missing_field_names_field_and_available_fields():
    template = compile_templates(make_task(input="{{ sentence }}"))["t"]
    with pytest.raises(T2TError) as error:
        template.render({"text": "a", "labels": [], "entities": []})
    message = str(error.value)
    assert "'sentence' is undefined" in message and "field 'input'" in message and "['entities', 'labels', 'text']" in message


def test_sandbox_blocks_python_internals():
    template = CompiledTemplate(make_task(), make_task(input="{{ text.__class__.__mro__ }}").templates[0])
    with pytest.raises(Exception, match="unsafe|not safely|access"):
        template.render({"text": "a", "labels": [], "entities": []})


def test_prediction_render_skips_target():
    template = compile_templates(make_task())["t"]
    assert template.render({"text": "a", "labels": ["x"]}, with_target=False).target == ""


def test_variables_and_hash_follow_template_text():
    task = make_task()
    assert compile_templates(task)["t"].variables() == {"labels", "text", "entities"}
    changed = make_task(instruction="Other")
    assert template_hash(task.templates[0]) != template_hash(changed.templates[0])


def test_task_file_unknown_key_suggests_closest(tmp_path: Path):
    path = tmp_path / "t.yaml"
    path.write_text("name: a/b\ndomain: a\nsource: {path: d.jsonl}\ntemplates:\n"
                    "  - {id: t, instruction: x, target: y, inptu: z}\n")
    with pytest.raises(T2TError, match=r"(?s)t.yaml.*unknown key 'templates.0.inptu'. Did you mean 'input'"):
        load_task_file(path)
