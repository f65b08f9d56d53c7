"""Super-NaturalInstructions metrics equal the official scorer.

Expected values: allenai/natural-instructions ``eval/automatic/evaluation.py`` (commit 8540acd),
``compute_metrics`` of the default (English) track, run with rouge-score 0.1.2; rounded to 4 decimals
by that script. Tolerance 0.01 points.
"""

from pathlib import Path

import pytest

from t2t_mtl.evaluation import compute_metrics
from t2t_mtl.tasks.schema import MetricSpec

# (prediction, references, official rougeL, official exact_match)
CASES = [
    ('Adolfo Suarez airport', ['Adolfo Suárez airport'], 57.1429, 0.0),
    ('Adolfo Suárez airport', ['Adolfo Suárez airport'], 100.0, 100.0),
    ('the cat sat on the mat', ['The cat sat on the mat.'], 100.0, 100.0),
    ('cats sitting', ['the cat sat'], 40.0, 0.0),
    ('running runners ran', ['run runner run'], 66.6667, 0.0),
    ('', ['an answer'], 0.0, 0.0),
    ('an answer', [''], 0.0, 0.0),
    ('Yes', ['yes', 'no'], 100.0, 100.0),
    ('No.', ['yes', 'No'], 100.0, 100.0),
    ('naïve café résumé', ['naive cafe resume'], 0.0, 0.0),
    ('São Paulo', ['Sao Paulo'], 40.0, 0.0),
    ("It's John's book", ['its johns book'], 50.0, 100.0),
    ('hello_world foo-bar', ['hello world foo bar'], 100.0, 0.0),
    ('1,000 dollars', ['1000 dollars'], 40.0, 100.0),
    ('3.14 is pi', ['pi is 3.14'], 50.0, 0.0),
    ('Who wrote Hamlet? Shakespeare', ['Shakespeare wrote Hamlet'], 57.1429, 0.0),
    ('B', ['(B)', 'B'], 100.0, 100.0),
    ('Option (A)', ['A'], 66.6667, 0.0),
    ('straße', ['strasse'], 0.0, 0.0),
    ('北京 is a city', ['Beijing is a city'], 85.7143, 0.0),
    ('the the the', ['the'], 50.0, 0.0),
    ('a b c d e f g', ['g f e d c b a'], 14.2857, 0.0),
    ('positive', ['Positive', 'POSITIVE'], 100.0, 100.0),
    ('  spaced   out  ', ['spaced out'], 100.0, 100.0),
    ('Generalization', ['generalize', 'general'], 100.0, 0.0),
    ('The quick brown fox jumps', ['A quick brown dog jumps over', 'quick fox'], 57.1429, 0.0),
]
CORPUS = {"rouge_l": 60.5678, "ni_exact_match": 34.6154}


@pytest.mark.parametrize(("prediction", "references", "rouge_l", "exact_match"), CASES)
def test_each_case_equals_the_official_script(prediction: str, references: list[str], rouge_l: float,
                                              exact_match: float) -> None:
    scores = compute_metrics(["rouge_l", "ni_exact_match"], [prediction], [references])
    assert scores["rouge_l"] == pytest.approx(rouge_l, abs=0.01)
    assert scores["ni_exact_match"] == pytest.approx(exact_match, abs=0.01)


def test_corpus_means_equal_the_official_script() -> None:
    predictions, references = [c[0] for c in CASES], [c[1] for c in CASES]
    scores = compute_metrics(["rouge_l", "ni_exact_match"], predictions, references)
    assert scores == {name: pytest.approx(value, abs=0.01) for name, value in CORPUS.items()}


def test_cross_lingual_track_uses_a_byte_level_bpe_without_space_marks(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    # a GPT-2-style byte-level BPE (spaces become "Ġ") that knows one merge, "Ġb"
    vocab = {c: i for i, c in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    vocab["Ġb"] = len(vocab)
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=[("Ġ", "b")]))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    PreTrainedTokenizerFast(tokenizer_object=bpe).save_pretrained(tmp_path)
    xlingual = [MetricSpec(name="rouge_l", tokenizer="xlingual", xlingual_tokenizer=str(tmp_path))]
    # tokens keep their case and are not stemmed: "ab" vs "Ab" share one of two
    assert compute_metrics(xlingual, ["ab"], [["Ab"]])["rouge_l"] == pytest.approx(50.0)
    # "a b" is ["a", "Ġb"], read as ["a", "b"] once the space mark is stripped
    assert compute_metrics(xlingual, ["a b"], [["ab"]])["rouge_l"] == pytest.approx(100.0)
