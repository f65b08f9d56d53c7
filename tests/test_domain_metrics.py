"""Domain metrics: parity with the reference scorers (seqeval, rouge-score, sacreBLEU), hand-computed values."""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest
import sacrebleu
from hypothesis import assume, given
from hypothesis import strategies as st
from rouge_score import rouge_scorer
from seqeval.metrics import f1_score as seqeval_f1

from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation import compute_metrics
from t2t_mtl.evaluation.bleu import smoothed_sentence_bleu
from t2t_mtl.evaluation.parsers import item_parser
from t2t_mtl.formats import FORMATS, format_spans
from t2t_mtl.tasks.importers import IMPORTERS
from t2t_mtl.tasks.schema import TaskSpec

from conftest import SHARED_DATA

needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")


def to_bio(sentence: str, entities: list[dict]) -> tuple[list[str], list[str]]:
    """Whitespace tokens of a tokenized sentence and BIO2 tags from character-offset entities."""
    starts = [m.start() for m in re.finditer(r"\S+", sentence)]
    tokens = sentence.split()
    tags = ["O"] * len(tokens)
    for entity in sorted(entities, key=lambda e: e["pos"][0]):
        first, last = entity["pos"]
        inside = [i for i, s in enumerate(starts) if first <= s < last]
        tags[inside[0]] = "B-" + entity["type"]
        for i in inside[1:]:
            tags[i] = "I-" + entity["type"]
    return tokens, tags


def perturbed(sentence: str, entities: list[dict], types: list[str], seed: int) -> list[dict]:
    """A plausible prediction: some entities dropped, retyped or extended by one token."""
    out = []
    for k, entity in enumerate(entities):
        step = (seed + k) % 7
        if step == 0:
            continue
        entity = dict(entity)
        if step == 1 and len(types) > 1:
            entity["type"] = types[(types.index(entity["type"]) + 1) % len(types)]
        if step == 2:
            end = sentence.find(" ", entity["pos"][1] + 1)
            end = len(sentence) if end < 0 else end
            entity["pos"] = [entity["pos"][0], end]
            entity["name"] = sentence[entity["pos"][0]:end]
        out.append(entity)
    ends = sorted((e["pos"][0], e["pos"][1]) for e in out)
    return out if all(a[1] <= b[0] for a, b in itertools.pairwise(ends)) else entities


@needs_shared
@pytest.mark.parametrize("dataset", ["ncbi", "bc5cdr", "JNLPBA"])
def test_span_f1_equals_seqeval_on_shared_bio_data(tmp_path: Path, dataset: str) -> None:
    folder = SHARED_DATA / "ie" / "NER_bio" / dataset
    rows = json.loads((folder / "test.json").read_text())[:1500]
    types = json.loads((folder / "labels.json").read_text())
    gold_tags, predicted_tags, predictions, references, lines = [], [], [], [], []
    for number, row in enumerate(rows):
        guess = perturbed(row["sentence"], row["entities"], types, number)
        tokens, tags = to_bio(row["sentence"], row["entities"])
        gold_tags.append(tags)
        predicted_tags.append(to_bio(row["sentence"], guess)[1])
        predictions.append(format_spans(guess))
        references.append(format_spans(row["entities"]))
        lines += [f"{token}\t{tag}\n" for token, tag in zip(tokens, tags)] + ["\n"]
    # BIO back to character-offset entities through the CoNLL importer: the same entities
    (tmp_path / "test.tsv").write_text("".join(lines))
    task = TaskSpec(name="t/t", domain="t", source={"format": "conll", "path": str(tmp_path), "split": "test",
                                                     "options": {"delimiter": "\t"}},
                    templates=[{"id": "t", "instruction": "x", "target": "y"}])
    imported = IMPORTERS["conll"](tmp_path, task.source.options, task)
    assert imported["sentence"] == [row["sentence"] for row in rows]
    assert imported["entities"] == [sorted(row["entities"], key=lambda e: e["pos"][0]) for row in rows]
    ours = compute_metrics(["span_f1"], predictions, references)["span_f1"]
    assert 20 < ours < 100
    assert ours == pytest.approx(100 * seqeval_f1(gold_tags, predicted_tags), abs=1e-9)


@needs_shared
def test_rouge_l_equals_rouge_score_on_ni_references() -> None:
    data = json.loads((SHARED_DATA / "ni" / "task1195_disflqa_disfluent_to_fluent_conversion.json").read_text())
    outputs = [i["output"][0] for i in data["Instances"]]
    predictions = [i["input"] for i in data["Instances"]]
    references = [[out, nxt] for out, nxt in zip(outputs, outputs[1:] + outputs[:1])]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    best = [max(scorer.score(r, p)["rougeL"].fmeasure for r in refs) for p, refs in zip(predictions, references)]
    assert all(text.isascii() for text in outputs + predictions)
    expected = 100 * sum(best) / len(best)
    assert compute_metrics(["rouge_l"], predictions, references)["rouge_l"] == pytest.approx(expected)


@needs_shared
def test_bleu_equals_sacrebleu_on_code_summaries() -> None:
    rows = [json.loads(line) for line in (SHARED_DATA / "code" / "code_summarization_ruby" / "test.jsonl").open()][:300]
    references = [" ".join(r["docstring_tokens"]) for r in rows]
    predictions = [" ".join(r["docstring_tokens"][: max(1, len(r["docstring_tokens"]) * 2 // 3)]) for r in rows]
    assert compute_metrics(["bleu"], predictions, references)["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(predictions, [references]).score)
    extra = references[1:] + references[:1]
    multi = [[r, e] for r, e in zip(references, extra)]
    assert compute_metrics(["bleu"], predictions, multi)["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(predictions, [references, extra]).score)


@needs_shared
def test_token_bleu_on_bugs2fix() -> None:
    rows = [json.loads(line) for line in (SHARED_DATA / "code" / "code_refinement_small" / "test.jsonl").open()][:200]
    predictions, references = [r["buggy"] for r in rows], [r["fixed"] for r in rows]
    # CodeXGLUE's Code-Code/code-refinement/evaluator/evaluator.py (smoothed BLEU) on these rows: "BLEU: 82.21"
    scores = compute_metrics(["token_bleu", "code_exact_match"], predictions, references)
    assert scores["token_bleu"] == pytest.approx(82.21, abs=0.01)
    assert scores["code_exact_match"] == 0.0
    assert compute_metrics(["code_exact_match"], references, references)["code_exact_match"] == 100.0


def test_smoothed_bleu_by_hand() -> None:
    # all 1- to 3-grams of "the cat sat" match; 4-grams: 0 of 0, smoothed (0+1)/(0+1)
    # brevity: exp(1 - (6 + 1) / (3 + 1)) = exp(-0.75)
    assert smoothed_sentence_bleu("The cat sat", ["the cat sat on the mat"]) == pytest.approx(math.exp(-0.75))
    # unigrams 2/3, bigrams (1+1)/(2+1), trigrams (0+1)/(1+1), 4-grams (0+1)/(0+1); equal lengths: no brevity penalty
    expected = math.exp((math.log(2 / 3) + math.log(2 / 3) + math.log(1 / 2) + math.log(1 / 1)) / 4)
    assert smoothed_sentence_bleu("a cat ran", ["a cat sat"]) == pytest.approx(expected)
    # the best reference counts clip the n-grams; punctuation splits off; case is ignored
    assert smoothed_sentence_bleu("Returns the value.", ["returns the value ."]) == pytest.approx(1.0)
    assert compute_metrics(["smoothed_bleu"], ["x y z w", "returns it"], [["x y z w"], ["returns it", "no"]]) == {
        "smoothed_bleu": pytest.approx(100.0)}


def test_ni_exact_match_normalises_like_tk_instruct() -> None:
    predictions = ["Yes.", "the  Answer!", "negative", "b"]
    references = [["yes"], ["The answer"], ["neg", "Negative"], ["a"]]
    assert compute_metrics(["ni_exact_match"], predictions, references) == {"ni_exact_match": 75.0}
    assert compute_metrics(["exact_match"], ["Yes."], ["yes"])["exact_match"] == 0.0  # punctuation kept there


def test_event_trigger_and_argument_f1() -> None:
    predictions = ["attack: fired | attacker: troops | target: crowd; die: killed | victim: man", "None", "None"]
    references = ["Attack: fired | Attacker: troops | Place: city; Die: died | Victim: man", "None",
                  "transport: moved | artifact: tanks"]
    scores = compute_metrics(["trigger_f1", "argument_f1"], predictions, references)
    # triggers: predicted 2, gold 3, 1 hit; the "None" on the event-less sentence earns nothing
    assert scores["trigger_f1"] == pytest.approx(100 * 2 / 5)
    assert scores["trigger_f1/precision"] == 50.0 and scores["trigger_f1/recall"] == pytest.approx(100 / 3)
    # arguments (type, role, argument): predicted 3, gold 4, hits (attack, attacker, troops) and (die, victim, man)
    assert scores["argument_f1"] == pytest.approx(100 * 4 / 7)
    assert compute_metrics(["trigger_f1"], ["None"], ["None"])["trigger_f1"] == 0.0  # UIE: 0/0 scores 0


def test_joint_goal_accuracy_and_slot_f1_take_the_best_plain_reference() -> None:
    predictions = ["genre=thriller; title=heat", "genre=comedy", "None"]
    references = [["genre=thriller; title=Heat 2", "genre=thriller; title=heat"], ["genre=drama"], ["None"]]
    scores = compute_metrics(["joint_goal_accuracy", "slot_f1"], predictions, references)
    assert scores["joint_goal_accuracy"] == pytest.approx(200 / 3)
    # slot pairs: predicted 3, gold 3 (best references), 2 hits
    assert scores["slot_f1"] == pytest.approx(100 * 4 / 6)


def test_act_and_mention_f1() -> None:
    acts = compute_metrics(["act_f1"], ["INFORM(genre=thriller); THANK_YOU", "GOODBYE"],
                           ["INFORM(genre=Thriller); INFORM_INTENT(intent=FindMovies)", "GOODBYE"])
    assert acts["act_f1"] == pytest.approx(100 * 4 / 6)
    mentions = compute_metrics(["mention_f1"], ["Ann Lee; Oslo; Oslo", "None"], ["Ann Lee; Oslo", "Bob"])
    # "Oslo" predicted twice counts twice: 3 predicted, 3 gold, 2 hits
    assert mentions["mention_f1"] == pytest.approx(100 * 4 / 6)


def test_span_f1_counts_repeated_mentions() -> None:
    gold = "Disease: cancer; Disease: cancer; Disease: tumour"
    assert compute_metrics(["span_f1"], ["Disease: cancer"], [gold])["span_f1/recall"] == pytest.approx(100 / 3)
    twice = compute_metrics(["span_f1"], ["Disease: cancer; disease: Cancer"], [gold])
    assert twice["span_f1/recall"] == pytest.approx(200 / 3)


def test_accuracy_with_several_references() -> None:
    scores = compute_metrics(["accuracy"], ["maybe", "yes", "no"], [["yes", "maybe"], ["yes"], ["yes"]])
    assert scores["accuracy"] == pytest.approx(200 / 3)


def test_reference_list_errors() -> None:
    with pytest.raises(T2TError, match=r"Examples \[1\] have an empty list of references"):
        compute_metrics(["exact_match"], ["a", "b"], [["a"], []])
    with pytest.raises(T2TError, match="Unknown metric 'joint_goal'; available: .*Did you mean 'joint_goal_accuracy'"):
        compute_metrics(["joint_goal"], ["a"], ["a"])


names = st.text(alphabet=st.characters(exclude_characters="|"), min_size=1, max_size=12)  # ";" is written as ","
words = st.text(alphabet=st.characters(exclude_characters=";|:=()"), min_size=1, max_size=12)
ROWS = {
    "format_mentions": st.lists(st.builds(lambda n: {"name": n}, names)),
    "format_events": st.lists(st.builds(
        lambda t, g, args: {"type": t, "trigger": g, "arguments": [{"role": r, "name": n} for r, n in args]},
        words, names.filter(lambda s: ":" not in s), st.lists(st.tuples(words, names), max_size=3))),
    "format_state": st.lists(st.builds(lambda s, v: {"slot": s, "value": v}, words, names)),
    "format_acts": st.lists(st.builds(lambda a, s, v: {"act": a, "slot": s, "value": v},
                                      words, st.one_of(st.just(""), words), st.one_of(st.just(""), words))),
}


def _well_formed(fmt: str, item: tuple) -> bool:
    """Items the grammar can carry: the required parts are not empty after normalisation, nor the word None."""
    if fmt == "format_events":
        return bool(item[0] and item[1]) and all(role and name for role, name in item[2])
    if fmt == "format_acts":
        return item[0] not in ("", "none")
    return all(item) and item != ("none",)


@pytest.mark.parametrize("fmt", sorted(ROWS))
@given(data=st.data())
def test_formats_round_trip(fmt: str, data: st.DataObject) -> None:
    rows = data.draw(ROWS[fmt])
    gold = FORMATS[fmt].gold(rows)
    assume(all(_well_formed(fmt, item) for item in gold))
    assert Counter(item_parser(FORMATS[fmt].parser).items(FORMATS[fmt].render(rows))) == gold


def test_gold_escapes_separators_inside_names_and_keeps_them() -> None:
    assert FORMATS["format_state"].gold([{"slot": "Title", "value": "Heat; 2"}]) == {("title", "heat ; 2"): 1}
    assert FORMATS["format_events"].render([{"type": "a", "trigger": "b|c", "arguments": []}]) == r"a: b\|c"
