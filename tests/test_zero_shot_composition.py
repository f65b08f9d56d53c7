"""Routing unseen tasks without labels: fit-unlabelled (entropy minimisation) and Arrow (per-token, by prototypes)."""

import json
from pathlib import Path

import pytest
import torch

from t2t_mtl.cli import main
from t2t_mtl.errors import T2TError
from t2t_mtl.inference import Predictor
from t2t_mtl.modeling.routed import Routing, routed_call, routed_layers
from t2t_mtl.modeling.routed.formulations import arrow_delta, skill_prototypes
from t2t_mtl.modeling.routed.routing import Arrow

from conftest import colour_rows, train_toy_run


def test_prototypes_are_the_top_right_singular_vectors_of_each_skill():
    torch.manual_seed(0)
    a, b = torch.randn(3, 4, 20, dtype=torch.float64), torch.randn(3, 16, 4, dtype=torch.float64)  # A_s, B_s
    prototypes = skill_prototypes(a.transpose(1, 2), b.transpose(1, 2))  # skill-major: A_s^T, B_s^T
    for s in range(3):
        delta = b[s] @ a[s]
        top = torch.linalg.svd(delta).Vh[0]
        assert float((prototypes[s].double() @ top).abs()) == pytest.approx(1.0, abs=1e-6)


def test_arrow_mixes_the_outputs_of_the_k_closest_skills_per_token():
    torch.manual_seed(1)
    skills, rank, d_in, d_out = 4, 3, 10, 7
    a, b = torch.randn(skills, rank, d_in, dtype=torch.float64), torch.randn(skills, d_out, rank, dtype=torch.float64)
    h = torch.randn(2, 5, d_in, dtype=torch.float64)
    prototypes = torch.nn.functional.normalize(torch.randn(skills, d_in), dim=-1)
    delta = arrow_delta(h, a.transpose(1, 2), b.transpose(1, 2), prototypes, top_k=2, temperature=0.5, scale=2.0)
    for i in range(2):
        for t in range(5):
            x = h[i, t]
            closeness = (prototypes.double() @ x).abs()
            top = closeness.topk(2).indices
            weights = torch.softmax(closeness[top] / 0.5, dim=0)
            expected = sum(w * 2.0 * b[s] @ (a[s] @ x)
                           for w, s in zip(weights, top.tolist()))
            torch.testing.assert_close(delta[i, t], expected, rtol=1e-10, atol=1e-10)


@pytest.fixture(scope="module")
def routed_run(tmp_path_factory, tiny_t5: Path) -> Path:
    return train_toy_run(tmp_path_factory.mktemp("zero_shot"), tiny_t5, {"type": "poly", "rank": 4, "n_skills": 3},
                         train={"max_steps": 8, "lr": 3e-2})


def test_fit_unlabelled_lowers_the_entropy_of_its_answers_and_touches_no_weight(routed_run: Path):
    predictor = Predictor.from_run(routed_run, device="cpu")
    spec = predictor.task("toy/unseen")
    batches = predictor.labelled_batches(spec, [{"text": r["text"]} for r in colour_rows(8)], labelled=False)
    before = {name: value.clone() for name, value in predictor.model.state_dict().items()}
    router, entropies = predictor.routing_plan.fit_unlabelled(batches, steps=20)
    assert entropies[-1] < entropies[0]
    assert all(torch.equal(value, before[name]) for name, value in predictor.model.state_dict().items())
    assert router.weights.shape == (len(routed_layers(predictor.model)), 1, 3)
    rows = [{"text": r["text"]} for r in colour_rows(3)]
    assert len(predictor.predict("toy/unseen", rows, routing="fit-unlabelled")) == 3
    assert predictor.routing_plan.fits["toy/unseen"][0] == "fit-unlabelled"


def test_arrow_routes_beam_search_and_caches_its_prototypes(routed_run: Path, tmp_path: Path):
    predictor = Predictor.from_run(routed_run, device="cpu")
    rows = [{"text": r["text"]} for r in colour_rows(4)]
    first = predictor.predict("toy/unseen", rows, routing="arrow")
    cache = routed_run / "arrow_prototypes.safetensors"
    assert cache.is_file() and len(first) == 4
    router = predictor.routing_plan.router("toy/unseen", "", "arrow")
    ids = torch.randint(1000, 2000, (2, 7))
    with routed_call(predictor.model, router.routing(torch.zeros(2, dtype=torch.long))):
        beams = predictor.model.generate(input_ids=ids, num_beams=3, num_return_sequences=2, max_new_tokens=5)
    assert beams.shape[0] == 4
    with torch.no_grad():  # the skills change: the cached prototypes no longer describe them
        routed_layers(predictor.model)[0].lora_B["default"].weight.mul_(-2).add_(0.1)
    assert not torch.equal(predictor.routing_plan.prototypes()[0], router.arrow.prototypes[0])
    one_layer = Routing.per_token(Arrow((router.arrow.prototypes[0],)))
    with pytest.raises(T2TError, match="Arrow routing holds prototypes of 1 layers"), \
            routed_call(predictor.model, one_layer):
        pass
    with pytest.raises(T2TError, match="export --routing arrow is not possible"):
        predictor.routing_plan.single(None, "arrow", None)


def test_evaluate_routes_held_out_tasks_by_each_mode_beside_the_runs_report(routed_run: Path, tmp_path: Path,
                                                                             capsys):
    before = (routed_run / "results.json").read_text()
    for mode in ("arrow", "fit-unlabelled"):
        assert main(["evaluate", str(routed_run), "--routing", mode]) == 0
        results = json.loads((routed_run / "routing" / mode / "results.json").read_text())
        assert {t["task"] for t in results["tasks"]} == {"toy/colours", "toy/colours_b", "toy/unseen"}
    curve = json.loads((routed_run / "routing" / "fit-unlabelled" / "fits.json").read_text())["toy/unseen"]
    assert curve["routing"] == "fit-unlabelled" and len(curve["loss_per_step"]) == 30
    assert (routed_run / "results.json").read_text() == before  # the run's own report is left alone
    assert main(["evaluate", str(routed_run), "--routing", "fit"]) == 2
    assert "give --fit-data" in capsys.readouterr().err
    assert main(["evaluate", str(routed_run), "--top-k", "2"]) == 2
    assert "--top-k is read only with --routing arrow" in capsys.readouterr().err
