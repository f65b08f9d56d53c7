"""An adapter method added from outside the package: a settings class, a method class and one register line."""

import json
from pathlib import Path
from typing import Literal

import pytest
import torch
import yaml
from peft import IA3Config, PeftModel, get_peft_model, set_peft_model_state_dict
from pydantic import Field
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM

from t2t_mtl.adapters.base import AdapterMethod, AdapterSettings
from t2t_mtl.adapters.registry import METHODS, method_for, register
from t2t_mtl.cli import main
from t2t_mtl.errors import T2TError
from t2t_mtl.inference import Predictor
from t2t_mtl.recipe import parse_recipe, recipe_model

from conftest import make_recipe


class Ia3Settings(AdapterSettings):
    """(IA)^3 of PEFT: learned rescaling of the listed T5 projections."""

    type: Literal["ia3"] = "ia3"
    targets: list[str] = Field(default_factory=lambda: ["k", "v", "wo"])
    feedforward: list[str] = Field(default_factory=lambda: ["wo"])


class Ia3Method(AdapterMethod):
    """The whole implementation of a new method: build, load and resume, plus a merged export."""

    def build(self, backbone, settings, n_tasks):
        config = IA3Config(target_modules=settings.targets, feedforward_modules=settings.feedforward,
                           task_type="SEQ_2_SEQ_LM")
        return get_peft_model(backbone.model, config)

    def load(self, backbone, settings, folder):
        return PeftModel.from_pretrained(backbone.model, folder)

    def load_weights(self, model, folder):
        set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))

    def export(self, model, routing, merge):
        return model.merge_and_unload() if merge else model


@pytest.fixture
def ia3():
    register("ia3", Ia3Settings, f"{__name__}:Ia3Method")
    yield
    METHODS.pop("ia3")
    method_for.cache_clear()
    recipe_model.cache_clear()


def test_a_registered_method_trains_resumes_predicts_and_exports(ia3, tmp_path: Path, tiny_t5: Path, task_dir: Path):
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, train={"max_steps": 4, "save_every": 2})
    recipe["adapter"] = {"type": "ia3"}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", str(path)]) == 0
    run = tmp_path / "run"
    assert json.loads((run / "final/adapter_config.json").read_text())["peft_type"] == "IA3"
    records = [json.loads(line) for line in (run / "predictions/toy__colours.jsonl").read_text().splitlines()]
    rows = [{"text": r["input"].split("\n", 1)[1]} for r in records]
    predictor = Predictor.from_run(run)
    assert predictor.predict("toy/colours", rows) == [r["prediction"] for r in records]
    with pytest.raises(T2TError, match="--routing applies to routed adapters; this run trained adapter.type: ia3"):
        predictor.predict("toy/colours", rows, routing="average")

    final = load_file(run / "final/adapter_model.safetensors")
    (run / "final").rename(tmp_path / "final_first")  # resume from the step-2 checkpoint: the same final weights
    assert main(["train", str(path), "--resume"]) == 0
    again = load_file(run / "final/adapter_model.safetensors")
    assert final.keys() == again.keys() and all(torch.equal(final[k], again[k]) for k in final)

    assert main(["export", str(run), "--merge", str(tmp_path / "merged")]) == 0
    merged = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "merged").eval()
    ids = torch.randint(1000, 2000, (2, 7))
    with torch.no_grad():
        expected = Predictor.from_run(run, device="cpu").model.eval()(input_ids=ids, decoder_input_ids=ids[:, :3])
        torch.testing.assert_close(merged(input_ids=ids, decoder_input_ids=ids[:, :3]).logits, expected.logits,
                                   rtol=1e-4, atol=1e-5)


def test_a_method_checks_its_own_keys(ia3):
    base = {"tasks": ["a"], "train": {"max_steps": 1}, "output_dir": "x"}
    assert parse_recipe({**base, "adapter": {"type": "ia3", "targets": ["q"]}}, "r").adapter.targets == ["q"]
    with pytest.raises(T2TError, match=r"unknown key 'adapter.rank'.*Valid keys here: feedforward, targets, type"):
        parse_recipe({**base, "adapter": {"type": "ia3", "rank": 4}}, "r")
    with pytest.raises(T2TError, match="unknown method 'ia4'. Did you mean 'ia3'"):
        parse_recipe({**base, "adapter": {"type": "ia4"}}, "r")
