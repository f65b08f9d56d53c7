"""Parity of SGD joint goal accuracy with the official DSTC8 scorer.

Expected values were computed once, outside the project, with the goal-accuracy functions of
google-research/google-research ``schema_guided_dst/metrics.py`` (commit
c81395588a6132b39676c5f11ece4e56dff2317d; ``get_average_and_joint_goal_accuracy``, the
frame-level joint goal accuracy that ``evaluate.py`` averages over frames), under Python
3.11.7 and numpy 2.4.6, by a scratch script (``cases.py`` for the cases below, ``real.py`` for
the shared SGD file) that gives each prediction's "slot=value; ..." pieces to the official
function as the frame's ``slot_values`` (in order, malformed pieces left out):

- ``difflib``: fuzzywuzzy 0.18.0 without python-Levenshtein, as the script's requirements.txt
  installs it (fuzzywuzzy 0.17.0 gives the same values), ``use_fuzzy_match=True``;
- ``levenshtein``: fuzzywuzzy 0.18.0 with python-Levenshtein 0.12.2, ``use_fuzzy_match=True``;
- ``exact``: ``use_fuzzy_match=False``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation import compute_metrics, load_metric
from t2t_mtl.evaluation.dialogue_state import parse_state_reference, state_reference, token_sort_ratio
from t2t_mtl.formats import format_state
from t2t_mtl.tasks.importers import IMPORTERS

RESTAURANTS = {"restaurant_name": False, "city": False, "date": False, "time": False, "cuisine": False,
               "street_address": False, "phone_number": False, "number_of_seats": True, "price_range": True,
               "has_vegetarian_options": True}
MEDIA = {"title": False, "genre": False, "subtitle_language": True, "starring": False}
LONG = ("1201 K Street Northwest, Washington, District of Columbia 20005, United States of America, "
        "second floor, entrance on the corner of Twelfth Street, next to the old Franklin School building and park")
LONG_TYPO = LONG.replace("Franklin", "Frnaklin").replace("Twelfth", "Twelth")
MANY = {"restaurant_name": ["Chez Panisse", "Chez Panisse Cafe", "Panisse"],  # 81 combinations of listed values
        "city": ["Berkeley", "Berkeley, CA", "Berkeley California"],
        "time": ["7 pm", "19:00", "7 in the evening"],
        "date": ["March 3rd", "3rd of March", "2019-03-03"]}

# name: (service slots, reference slot_values, prediction, official JGA x 100 with difflib, levenshtein, exact)
CASES: dict[str, tuple[dict[str, bool], dict[str, list[str]], str, tuple[float, float, float]]] = {
    "exact": (RESTAURANTS, {"city": ["San Jose"], "price_range": ["moderate"]},
              "city=San Jose; price_range=moderate", (100.0, 100.0, 100.0)),
    "lowercase_categorical": (RESTAURANTS, {"city": ["San Jose"], "has_vegetarian_options": ["True"]},
                              "city=San Jose; has_vegetarian_options=true", (0.0, 0.0, 0.0)),
    "lowercase_non_categorical": (RESTAURANTS, {"city": ["San Jose"], "cuisine": ["Thai"]},
                                  "city=san jose; cuisine=thai", (100.0, 100.0, 0.0)),
    "typo_non_categorical": (RESTAURANTS, {"restaurant_name": ["Chez Panisse"]},
                             "restaurant_name=Chez Panise", (96.0, 96.0, 0.0)),
    "typos_in_two_slots": (RESTAURANTS, {"restaurant_name": ["Chez Panisse"], "city": ["Berkeley"]},
                           "restaurant_name=Chez Panisee; city=Berkely", (85.56, 85.56, 0.0)),
    "wrong_non_categorical": (RESTAURANTS, {"restaurant_name": ["Chez Panisse"]},
                              "restaurant_name=Zazie", (12.0, 47.0, 0.0)),
    "out_of_schema_slot": (RESTAURANTS, {"city": ["San Francisco"]},
                           "city=San Francisco; area=downtown", (100.0, 100.0, 100.0)),
    "missing_slot": (RESTAURANTS, {"city": ["San Francisco"], "cuisine": ["Mexican"]},
                     "city=San Francisco", (0.0, 0.0, 0.0)),
    "extra_schema_slot": (RESTAURANTS, {"city": ["San Francisco"]},
                          "city=San Francisco; cuisine=Mexican", (0.0, 0.0, 0.0)),
    "alternative_non_categorical": (RESTAURANTS, {"time": ["7 pm", "19:00"]}, "time=19:00", (100.0, 100.0, 100.0)),
    "alternative_categorical": (RESTAURANTS, {"number_of_seats": ["2", "two"]}, "number_of_seats=two",
                                (0.0, 0.0, 0.0)),
    "first_categorical": (RESTAURANTS, {"number_of_seats": ["2", "two"]}, "number_of_seats=2",
                          (100.0, 100.0, 100.0)),
    "many_values_last": (RESTAURANTS, MANY,
                         "restaurant_name=Panisse; city=Berkeley California; time=7 in the evening; date=2019-03-03",
                         (100.0, 100.0, 100.0)),
    "many_values_mixed_typo": (RESTAURANTS, MANY,
                               "restaurant_name=Chez Panisse Cafe; city=Berkeley, CA; time=19.00; date=3rd of Mrach",
                               (92.0, 92.0, 0.0)),
    "none_for_none": (RESTAURANTS, {}, "None", (100.0, 100.0, 100.0)),
    "empty_for_none": (MEDIA, {}, "", (100.0, 100.0, 100.0)),
    "none_for_state": (MEDIA, {"title": ["Inception"]}, "None", (0.0, 0.0, 0.0)),
    "slot_for_none": (MEDIA, {}, "genre=Comedy", (0.0, 0.0, 0.0)),
    "twice_wrong_first": (RESTAURANTS, {"city": ["San Jose"]}, "city=Oakland; city=San Jose", (40.0, 40.0, 0.0)),
    "twice_right_first": (RESTAURANTS, {"city": ["San Jose"]}, "city=San Jose; city=Oakland",
                          (100.0, 100.0, 100.0)),
    "token_order": (RESTAURANTS, {"city": ["San Jose"]}, "city=Jose San", (100.0, 100.0, 0.0)),
    "punctuation": (MEDIA, {"title": ["Spider-Man: Homecoming"]}, "title=Spider Man Homecoming", (100.0, 100.0, 0.0)),
    "accent": (RESTAURANTS, {"restaurant_name": ["Café Rouge"]}, "restaurant_name=Cafe Rouge", (95.0, 95.0, 0.0)),
    "whitespace_categorical": (MEDIA, {"subtitle_language": ["Spanish"], "title": ["Roma"]},
                               "  subtitle_language =  Spanish ;title=Roma ", (100.0, 100.0, 100.0)),
    "dontcare": (RESTAURANTS, {"price_range": ["dontcare"], "city": ["Napa"]}, "price_range=dontcare; city=napa",
                 (100.0, 100.0, 0.0)),
    "malformed_pieces": (RESTAURANTS, {"city": ["San Jose"]}, "city=San Jose; garbage; =x; cuisine=",
                         (100.0, 100.0, 100.0)),
    "slot_name_case": (RESTAURANTS, {"city": ["San Jose"]}, "City=San Jose", (0.0, 0.0, 0.0)),
    "long_value_typos": (RESTAURANTS, {"street_address": [LONG]}, "street_address=" + LONG_TYPO, (99.0, 99.0, 0.0)),
    "media_partial": (MEDIA, {"title": ["The Grand Budapest Hotel"], "starring": ["Ralph Fiennes"],
                              "subtitle_language": ["French"]},
                      "title=Grand Budapest Hotel; starring=Ralph Fines; subtitle_language=French",
                      (83.72, 83.72, 0.0)),
    "phone_typos": (RESTAURANTS, {"phone_number": ["+1 312-558-1020"]}, "phone_number=+vt312-558-j120",
                    (50.0, 57.0, 0.0)),
    "categorical_typo": (MEDIA, {"subtitle_language": ["French"]}, "subtitle_language=Frnech", (0.0, 0.0, 0.0)),
}
MODES = ("difflib", "levenshtein", "exact")
# The same script: np.mean of the frame values above, x 100 (evaluate.py's "#ALL_SERVICES" mean).
CORPUS = {"difflib": 66.23483870967742, "levenshtein": 67.58967741935483, "exact": 32.25806451612903}


def jga(predictions: list[str], references: list[Any], **options: Any) -> float:
    if not options:
        return compute_metrics(["joint_goal_accuracy"], predictions, references)["joint_goal_accuracy"]
    result = load_metric("joint_goal_accuracy").compute(predictions=predictions, references=references, **options)
    return result["joint_goal_accuracy"]


def reference(slots: dict[str, bool], values: dict[str, list[str]]) -> list[str]:
    """The importer's state_reference: the canonical state, then the structured reference."""
    canonical = format_state([{"slot": s, "value": values[s][0]} for s in sorted(values)])
    return [canonical, state_reference(slots, values)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_frame_equals_official(name: str, mode: str) -> None:
    slots, values, prediction, expected = CASES[name]
    assert jga([prediction], [reference(slots, values)], fuzzy=mode) == pytest.approx(
        expected[MODES.index(mode)], abs=0.01)


@pytest.mark.parametrize("mode", MODES)
def test_corpus_equals_official(mode: str) -> None:
    predictions = [case[2] for case in CASES.values()]
    references = [reference(case[0], case[1]) for case in CASES.values()]
    assert jga(predictions, references, fuzzy=mode) == pytest.approx(CORPUS[mode], abs=0.01)
    # a frame of a service without slots is "NA" officially and left out of the mean
    empty = reference({}, {})
    assert jga([*predictions, "None"], [*references, empty], fuzzy=mode) == pytest.approx(CORPUS[mode], abs=0.01)


def test_default_is_the_official_setup() -> None:
    slots, values, prediction, expected = CASES["phone_typos"]
    assert jga([prediction], [reference(slots, values)]) == pytest.approx(expected[0], abs=0.01)


def test_token_sort_ratio_equals_fuzzywuzzy() -> None:
    # fuzzywuzzy 0.18.0 fuzz.token_sort_ratio(a, b): without python-Levenshtein, with 0.12.2 (the last pair is an
    # exact half, 7.5: python-Levenshtein 0.27 gives 7 there)
    pairs = [("+1 312-558-1020", "+vt312-558-j120", 50, 57), ("Chez Panisse", "Zazie", 12, 47),
             ("Café Rouge", "Cafe Rouge", 95, 95), ("a_b c", "c a_b", 100, 100), ("$", "%", 100, 100),
             ("New York", "", 0, 0),
             ("a_b c", "1201 K Street Northwest, Washington, District of Columbia 20005, United States", 5, 8)]
    for a, b, plain, speedup in pairs:
        assert (token_sort_ratio(a, b), token_sort_ratio(a, b, "levenshtein")) == (plain, speedup), (a, b)


def test_unknown_fuzzy_option() -> None:
    with pytest.raises(T2TError, match="option fuzzy must be one of"):
        jga(["None"], [reference(MEDIA, {})], fuzzy="fuzzywuzzy")


def test_plain_references_keep_exact_normalised_matching() -> None:
    assert jga(["genre=Thriller; title=heat"], [["genre=thriller; title=Heat"]]) == 100.0
    assert jga(["genre=thriller; area=x"], [["genre=thriller"]]) == 0.0


def test_slot_f1_reads_structured_references() -> None:
    slots, values = RESTAURANTS, MANY
    scores = compute_metrics(["slot_f1"], ["restaurant_name=panisse; city=Berkeley; time=8 pm; area=x"],
                             [reference(slots, values)])
    # gold 4 pairs (the listed values the prediction used, else the first), predicted 4, hits 2
    assert scores["slot_f1"] == pytest.approx(50.0)
    assert scores["slot_f1/precision"] == pytest.approx(50.0) and scores["slot_f1/recall"] == pytest.approx(50.0)


def test_state_reference_round_trips() -> None:
    text = state_reference(MEDIA, {"title": ["Roma", "roma"]})
    parsed = parse_state_reference(text)
    assert parsed is not None and parsed.service_slots == MEDIA and parsed.slot_values == {"title": ["Roma", "roma"]}
    assert parse_state_reference("title=Roma") is None and parse_state_reference("{not json") is None


# --- real frames: perturbed gold of the shared SGD test file against the official script ---

SGD = Path(__file__).resolve().parents[2] / "shared" / "data" / "dialogue" / "sgd" / "test_dialogues_010.json"
if not SGD.is_file():
    SGD = Path("/work/shared/data/dialogue/sgd/test_dialogues_010.json")


def _typo(value: str) -> str:
    return value[: len(value) // 2] + value[len(value) // 2 + 1:] if len(value) >= 3 else value


PERTURB = {
    "gold": lambda state, cat: state,
    "lowercase": lambda state, cat: [{**s, "value": s["value"].lower()} for s in state],
    "out_of_schema": lambda state, cat: [*state, {"slot": "not_in_schema", "value": "x"}],
    "typo_non_categorical": lambda state, cat: [{**s, "value": s["value"] if cat[s["slot"]] else _typo(s["value"])}
                                                for s in state],
    "drop_last": lambda state, cat: state[:-1],
}
# real.py on test_dialogues_010.json + test_schema.json, 652 user frames: (difflib, levenshtein, exact)
REAL = {"gold": (100.0, 100.0, 100.0), "lowercase": (46.01227, 46.01227, 13.03681),
        "out_of_schema": (100.0, 100.0, 100.0), "typo_non_categorical": (80.912902, 80.940601, 10.889571),
        "drop_last": (8.128834, 8.128834, 8.128834)}


@pytest.mark.skipif(not SGD.is_file(), reason="shared SGD data absent")
@pytest.mark.parametrize("perturbation", sorted(PERTURB))
def test_real_frames_equal_official(perturbation: str) -> None:
    rows = list(IMPORTERS["sgd"](SGD, {"schema": "test_schema.json"}, None))
    assert len(rows) == 652
    predictions, references = [], []
    for row in rows:
        categorical = json.loads(row["state_reference"][1])["service_slots"]
        predictions.append(format_state(PERTURB[perturbation](row["state"], categorical)))
        references.append(row["state_reference"])
    for mode, expected in zip(MODES, REAL[perturbation]):
        assert jga(predictions, references, fuzzy=mode) == pytest.approx(expected, abs=0.01), mode


def test_escaped_separators_in_a_value_round_trip() -> None:
    # format_state escapes ";" in a value; the prediction's value is read back unescaped, as the frame holds it
    values = {"title": ["Dead & amp ; Company"], "genre": ["Rock"]}
    rendered = format_state([{"slot": s, "value": values[s][0]} for s in sorted(values)])
    assert jga([rendered], [reference(MEDIA, values)]) == 100.0
    assert compute_metrics(["slot_f1"], [rendered], [reference(MEDIA, values)])["slot_f1"] == 100.0
