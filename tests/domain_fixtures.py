"""Small files in the public benchmark formats the domain task files read, and where the shared data lives.

Each writer names the format it follows; the contents are invented.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import ROOT, SHARED_DATA

INSTRUCTIONS = ROOT / "instructions"
DOMAINS = ("ie", "dialogue", "code", "biomed", "ni")

# Shipped task → its data in ../shared/data (see shared/data/README.md).
SHARED_PATHS = {
    "ie/ner_mit_restaurant": "ie/NER/mit-restaurant/test.json",
    "ie/re_conll04": "ie/RE/conll04/test.json",
    "ie/es_conll04": "ie/RE/conll04/test.json",
    "ie/et_conll04": "ie/RE/conll04/test.json",
    "dialogue/intent_banking77": "dialogue/banking77/test.csv",
    "dialogue/dst_sgd": "dialogue/sgd/test_dialogues_010.json",
    "dialogue/act_sgd": "dialogue/sgd/test_dialogues_010.json",
    "dialogue/response_sgd": "dialogue/sgd/test_dialogues_010.json",
    "code/summarize_ruby": "code/code_summarization_ruby/test.jsonl",
    "code/repair_bugs2fix": "code/code_refinement_small/test.jsonl",
    "biomed/ner_anatem": "ie/NER_bio/AnatEM/test.json",
    "biomed/ner_bc2gm": "ie/NER_bio/bc2gm/test.json",
    "biomed/ner_bc5cdr": "ie/NER_bio/bc5cdr/test.json",
    "biomed/ner_bc5cdr_chemical": "ie/NER_bio/bc5cdr/test.json",
    "biomed/ner_bc5cdr_disease": "ie/NER_bio/bc5cdr/test.json",
    "biomed/ner_bionlp09": "ie/NER_bio/BioNLP09/test.json",
    "biomed/ner_jnlpba": "ie/NER_bio/JNLPBA/test.json",
    "biomed/ner_linnaeus": "ie/NER_bio/linnaeus/test.json",
    "biomed/ner_ncbi_disease": "ie/NER_bio/ncbi/test.json",
    "ni/ni_task": "ni/task1531_daily_dialog_type_classification.json",
}


def shipped_task_files() -> list[Path]:
    """Every task file of the domain packs."""
    return sorted(p for domain in DOMAINS for p in (INSTRUCTIONS / domain).rglob("*.yaml"))


def _dump(path: Path, value: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1), encoding="utf-8")
    return path


def _lines(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _entity(sentence: str, name: str, kind: str) -> dict:
    start = sentence.index(name)
    return {"name": name, "type": kind, "pos": [start, start + len(name)]}


def write_ie_ner(folder: Path) -> Path:
    """IE-INSTRUCTIONS NER folder (InstructUIE): train/dev/test.json and labels.json."""
    sentences = [("Ann Lee joined Acme in Oslo .",
                  [("Ann Lee", "person"), ("Acme", "organization"), ("Oslo", "location")]),
                 ("nothing to see here", []),
                 ("Bob met Ann Lee .", [("Bob", "person"), ("Ann Lee", "person")])]
    rows = [{"sentence": s, "entities": [_entity(s, n, t) for n, t in ents]} for s, ents in sentences]
    for split in ("train", "dev", "test"):
        _dump(folder / f"{split}.json", rows if split == "train" else rows[:1])
    _dump(folder / "labels.json", ["person", "organization", "location"])
    return folder


def write_ie_ee(folder: Path) -> Path:
    """IE-INSTRUCTIONS EE folder: events with trigger, type and arguments; labels.json = [types, roles]."""
    text = "Hackers breached the bank and stole records ."
    events = [
        {"trigger": "breached", "type": "databreach", "pos": [8, 16],
         "arguments": [{"name": "Hackers", "role": "attacker", "pos": [0, 7]},
                       {"name": "the bank", "role": "victim", "pos": [17, 25]}]},
        {"trigger": "stole", "type": "databreach", "pos": [30, 35],
         "arguments": [{"name": "records", "role": "compromised data", "pos": [36, 43]}]},
    ]
    rows = [{"sentence": text, "events": events}, {"sentence": "The weather was fine .", "events": []},
            {"sentence": "A patch fixed the flaw .", "events": [
                {"trigger": "fixed", "type": "patch vulnerability", "pos": [8, 13],
                 "arguments": [{"name": "the flaw", "role": "vulnerability", "pos": [14, 22]}]}]}]
    _dump(folder / "train.json", rows)
    _dump(folder / "labels.json", [["databreach", "patch vulnerability"], ["attacker", "victim", "compromised data",
                                                                          "vulnerability"]])
    return folder


CONLL03 = """-DOCSTART- -X- -X- O

EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
call NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
lives VBZ B-VP O
in IN B-PP O
New NNP B-NP B-LOC
York NNP I-NP I-LOC
"""


def write_conll03(folder: Path) -> Path:
    """CoNLL-2003 token files (token, POS, chunk, NER tag; IOB1 tags as in the original release)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.txt").write_text(CONLL03, encoding="utf-8")
    return folder


def write_ni(path: Path, instances: int = 4) -> Path:
    """A Super-NaturalInstructions task file (allenai/natural-instructions tasks/*.json)."""
    return _dump(path, {
        "Contributors": ["nobody"], "Source": ["invented"], "Categories": ["Sentiment Analysis"],
        "Definition": ["Say whether the review is positive or negative."],
        "Positive Examples": [{"input": f"good {i}", "output": "positive", "explanation": "It praises."}
                              for i in range(3)],
        "Negative Examples": [{"input": "bad", "output": "great", "explanation": "Not a label."}],
        "Instances": [{"id": f"task0-{i}", "input": f"review {i}", "output": ["negative", "neg"]}
                      for i in range(instances)],
    })


def _turn(speaker: str, utterance: str, service: str, actions: list, state: dict | None = None) -> dict:
    frame = {"service": service, "slots": [],
             "actions": [{"act": a, "slot": s, "values": v, "canonical_values": v} for a, s, v in actions]}
    if state is not None:
        frame["state"] = {"active_intent": "FindMovies", "requested_slots": [], "slot_values": state}
    return {"speaker": speaker, "utterance": utterance, "frames": [frame]}


def write_sgd(folder: Path, frameless_turn: bool = False) -> Path:
    """A Schema-Guided Dialogue split folder: dialogues_001.json and schema.json."""
    turns = [
        _turn("USER", "Find me a thriller.", "Movies_9",
              [("INFORM_INTENT", "intent", ["FindMovies"]), ("INFORM", "genre", ["thriller"])],
              {"genre": ["thriller"]}),
        _turn("SYSTEM", "How about Heat or Ronin?", "Movies_9", [("OFFER", "title", ["Heat", "Ronin"])]),
        _turn("USER", "Heat, at the Grand.", "Movies_9", [("SELECT", "", []), ("INFORM", "theater", ["Grand"])],
              {"genre": ["thriller"], "title": ["Heat", "heat"], "theater": ["Grand"]}),
        _turn("SYSTEM", "Enjoy the film.", "Movies_9", [("GOODBYE", "", [])]),
    ]
    if frameless_turn:
        turns[2]["frames"] = []
    _dump(folder / "dialogues_001.json", [{"dialogue_id": "1_00000", "services": ["Movies_9"], "turns": turns}])
    _dump(folder / "schema.json", [{
        "service_name": "Movies_9", "description": "Find movies and showtimes",
        "slots": [{"name": "genre", "description": "Kind of film", "is_categorical": True,
                   "possible_values": ["thriller", "comedy"]},
                  {"name": "title", "description": "Film title", "is_categorical": False},
                  {"name": "theater", "description": "Cinema name", "is_categorical": False}],
        "intents": [{"name": "FindMovies", "description": "Search for movies"}],
    }])
    return folder


def write_pubmedqa(path: Path) -> Path:
    """PubMedQA ori_pqal.json: PubMed id → question, contexts and final decision."""
    return _dump(path, {
        str(pmid): {"QUESTION": f"Does drug {pmid} lower blood pressure?",
                    "CONTEXTS": ["Patients took it.", "It worked."],
                    "LABELS": ["METHODS", "RESULTS"], "LONG_ANSWER": "Yes, modestly.", "final_decision": decision}
        for pmid, decision in zip(range(100, 104), ["yes", "no", "maybe", "yes"])
    })


def write_chemprot(path: Path) -> Path:
    """BLUE benchmark ChemProt TSV: index, sentence with @CHEMICAL$ and @GENE$ masks, label."""
    rows = [("1.T1.T2", 'The "potent" @CHEMICAL$ inhibited @GENE$ activity.', "CPR:4"),
            ("2.T1.T3", "@CHEMICAL$ is an agonist of @GENE$.", "CPR:5"),
            ("3.T2.T4", "@CHEMICAL$ was given; @GENE$ was measured.", "false"),
            ("4.T1.T5", "@GENE$ converts @CHEMICAL$ into its metabolite.", "CPR:9")]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("index\tsentence\tlabel\n" + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_devign(path: Path) -> Path:
    """CodeXGLUE defect detection (Devign) JSON lines: func, target (1 = vulnerable), project, commit_id, idx."""
    funcs = ["int f(char *b) { char s[4]; strcpy(s, b); return 0; }",
             "int g(int a) { return a + 1; }",
             "void h(int *p) { free(p); *p = 1; }",
             "int k(void) { return 0; }"]
    return _lines(path, [{"project": "demo", "commit_id": f"c{i}", "target": int(i % 2 == 0), "func": f, "idx": i}
                         for i, f in enumerate(funcs)])


def write_concode(path: Path) -> Path:
    """CodeXGLUE text-to-code (CONCODE) JSON lines: nl with the class environment, code; space-tokenized."""
    rows = [{"nl": "returns the name . concode_field_sep String name concode_field_sep void setName",
             "code": "String function ( ) { return name ; }"},
            {"nl": "adds two ints . concode_elem_sep int total concode_field_sep int get",
             "code": "int function ( int a , int b ) { return a + b ; }"},
            {"nl": "clears the list . concode_field_sep List items",
             "code": "void function ( ) { items . clear ( ) ; }"}]
    return _lines(path, rows)


# Shipped task → a writer of a small fixture in its format (for tasks without shared data, and importer tests).
FIXTURES = {
    "ie/ee_casie": lambda tmp: write_ie_ee(tmp / "EE" / "CASIE"),
    "ie/ner_conll03": lambda tmp: write_conll03(tmp / "conll03"),
    "biomed/qa_pubmedqa": lambda tmp: write_pubmedqa(tmp / "ori_pqal.json"),
    "biomed/rc_chemprot": lambda tmp: write_chemprot(tmp / "chemprot" / "train.tsv"),
    "code/defect_devign": lambda tmp: write_devign(tmp / "devign" / "train.jsonl"),
    "code/nl2code_concode": lambda tmp: write_concode(tmp / "concode" / "train.json"),
}


def shared(task_name: str) -> Path:
    """The shared data file a task reads in the tests."""
    return SHARED_DATA / SHARED_PATHS[task_name]
