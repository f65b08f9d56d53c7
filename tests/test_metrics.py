"""Shipped metrics: hand-computed values, offline loading, errors."""

import socket
from collections.abc import Iterator

import pytest
from rouge_score import rouge_scorer

from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation import available_metrics, compute_metrics, load_metric
from t2t_mtl.tasks.schema import MetricSpec


@pytest.fixture(scope="module", autouse=True)
def no_network() -> Iterator[None]:
    """Fail any name lookup or connection, and load every metric fresh meanwhile."""

    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail(f"network access: {args}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("HF_DATASETS_OFFLINE", "1")
        patch.setattr(socket, "getaddrinfo", refuse)
        patch.setattr(socket.socket, "connect", refuse)
        load_metric.cache_clear()
        for name in available_metrics():
            load_metric(name)
        yield


def test_available_metrics() -> None:
    assert available_metrics() == [
        "accuracy", "act_f1", "argument_f1", "bleu", "code_exact_match", "exact_match", "in_scope_accuracy",
        "joint_goal_accuracy", "mention_f1", "ni_exact_match", "oos_recall", "rouge_l", "slot_f1", "smoothed_bleu",
        "span_f1", "token_bleu", "trigger_f1", "triple_f1",
    ]


def test_exact_match() -> None:
    scores = compute_metrics(["exact_match"], ["acme corp .", "b", "C"], ["Acme Corp.", "x", "c"])
    assert scores == {"exact_match": pytest.approx(200 / 3)}


def test_accuracy_and_macro_f1() -> None:
    scores = compute_metrics(["accuracy"], ["pos", "Neg", "neg", "pos"], ["pos", "pos", "neg", "neu"])
    # per label F1 = 2tp / (predicted + gold): pos 2/4, neg 2/3, neu 0/1
    assert scores == {"accuracy": 50.0, "accuracy/macro_f1": pytest.approx(100 * (1 / 2 + 2 / 3) / 3)}


def test_rouge_l_equals_rouge_score() -> None:
    pairs = [
        ("The cat sat on the mat.", "A cat was sitting on the mat"),
        ("police killed the gunman", "the gunman was shot down by police"),
        ("nothing in common", "entirely different words"),
    ]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    expected = 100 * sum(scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in pairs) / len(pairs)
    predictions, references = map(list, zip(*pairs))
    assert compute_metrics(["rouge_l"], predictions, references)["rouge_l"] == pytest.approx(expected)


def test_span_f1() -> None:
    predictions = ["person: Bob; org: Acme", "None", "None", "loc : paris"]
    references = ["person: bob", "None", "org: X", "loc: Paris; loc: Rome"]
    # 3 predicted, 4 gold, 2 hits; the "None" on the entity-free sentence adds nothing
    expected = {"span_f1": pytest.approx(400 / 7), "span_f1/precision": pytest.approx(200 / 3), "span_f1/recall": 50.0}
    assert compute_metrics(["span_f1"], predictions, references) == expected
    del predictions[1], references[1]
    assert compute_metrics(["span_f1"], predictions, references) == expected


def test_span_f1_without_any_entity_scores_as_uie_or_as_instructuie() -> None:
    # UIE's scorer: nothing predicted and nothing expected is 0/0, which it scores 0
    assert compute_metrics(["span_f1"], ["None", "none"], ["None", "None"])["span_f1"] == 0.0
    assert compute_metrics(["span_f1"], ["None"], ["person: bob"])["span_f1"] == 0.0
    # InstructUIE: "None" is an item, so it matches "None" and misses a real entity
    instructuie = compute_metrics(["span_f1"], ["None", "None", "person: bob"], ["None", "person: bob", "None"],
                                  preset="ie_instructuie")
    assert instructuie == {"span_f1": pytest.approx(100 / 3), "span_f1/precision": pytest.approx(100 / 3),
                           "span_f1/recall": pytest.approx(100 / 3)}


def test_metric_options_are_checked() -> None:
    with pytest.raises(T2TError, match="no option countng.*Did you mean 'counting'"):
        compute_metrics([MetricSpec(name="span_f1", countng="set")], ["None"], ["None"])
    with pytest.raises(T2TError, match="counting must be one of"):
        compute_metrics([MetricSpec(name="span_f1", counting="bag")], ["None"], ["None"])
    with pytest.raises(T2TError, match="Unknown metric preset"):
        compute_metrics(["span_f1"], ["None"], ["None"], preset="instructuie")
    twice = [MetricSpec(name="span_f1", counting="set")]
    assert compute_metrics(twice, ["a: x; a: x"], ["a: x"])["span_f1"] == 100.0
    assert compute_metrics(["span_f1"], ["a: x; a: x"], ["a: x"])["span_f1"] == pytest.approx(200 / 3)


def test_triple_f1() -> None:
    predictions = ["works for: Bob, Acme", "None"]
    references = ["works for: bob, acme; located in: Acme, Paris", "None"]
    assert compute_metrics(["triple_f1"], predictions, references) == {
        "triple_f1": pytest.approx(200 / 3),
        "triple_f1/precision": 100.0,
        "triple_f1/recall": 50.0,
    }


def test_several_metrics_at_once() -> None:
    scores = compute_metrics(["exact_match", "span_f1"], ["person: bob"], ["person: Bob"])
    assert scores == {"exact_match": 100.0, "span_f1": 100.0, "span_f1/precision": 100.0, "span_f1/recall": 100.0}


def test_unknown_metric() -> None:
    with pytest.raises(T2TError, match="available: accuracy, act_f1, .*Did you mean 'span_f1'"):
        compute_metrics(["span_f"], ["a"], ["a"])


def test_length_mismatch() -> None:
    with pytest.raises(T2TError, match="2 predictions against 3 references"):
        compute_metrics(["exact_match"], ["a", "b"], ["a", "b", "c"])


def test_no_examples() -> None:
    with pytest.raises(T2TError, match="No examples"):
        compute_metrics(["exact_match"], [], [])


def test_task_file_metric_options_reach_the_metric_and_bad_ones_name_the_file(tmp_path) -> None:
    from t2t_mtl.data import check_task_metrics
    from t2t_mtl.recipe import EvalSpec
    from t2t_mtl.tasks.registry import SelectedTask
    from t2t_mtl.tasks.schema import load_task_file

    from conftest import write_task

    good = load_task_file(write_task(tmp_path / "a", "t/good", [], metrics=[{"name": "span_f1", "counting": "set"}]))
    assert good.metrics[0].options == {"counting": "set"}
    assert compute_metrics(good.metrics, ["a: x; a: x"], ["a: x"])["span_f1"] == 100.0
    bad = write_task(tmp_path / "b", "t/bad", [], metrics=["accuracy", {"name": "span_f1", "counting": "bag"}])
    selected = [SelectedTask(spec=load_task_file(bad), entry=None)]
    with pytest.raises(T2TError, match=rf"{bad}.*metrics: metric span_f1: option counting must be one of"):
        check_task_metrics(selected, EvalSpec())
    with pytest.raises(T2TError, match="Unknown metric preset"):
        check_task_metrics([SelectedTask(spec=good, entry=None)], EvalSpec.model_construct(metric_preset="uie"))
