"""Small synthetic DEMO tasks for the offline quickstart, made by a deterministic generator.

Every task is a handful of sentence (or code) templates filled from vocabularies; entity
offsets are recorded while the templates are filled, so they are exact. Names are drawn
from large pools (first name x surname, word x company suffix, ~300 places), so most
evaluation names never occur in training: a model must learn to copy spans from its input
rather than recall them. Entity rows also ask for a varying subset of the entity types
(`types`), so a model learns to follow the type list of the instruction. The held-out task
has its own sentence frames and cities no training task uses. The same seed always writes
byte-identical files; the committed `instructions/demo/data/` is
`python -m t2t_mtl.demo instructions/demo/data`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Callable
from pathlib import Path

N_TRAIN, N_EVAL, N_HELD_OUT = 400, 40, 50
# more rows where the quickstart needs more practice (ner), fewer where it learns fast; relations rows are large
TRAIN_ROWS = {"ner": 500, "relations": 300, "intent": 250, "code": 250, "requests": 300}

Row = dict
Pool = tuple[str, ...] | Callable[[random.Random], str]  # a vocabulary, or a maker of composed names
SLOT = re.compile(r"\{(\w+)\}")


# ----------------------------------------------------------------------- helpers
def fill(rng: random.Random, template: str, pools: dict[str, Pool],
         types: dict[str, str]) -> tuple[str, dict[str, dict]]:
    """Fill `{slot}`s (slot `per2` draws from pool `per`, distinct from `per`).

    Returns the sentence and, for slots whose pool has a type in `types`, the entity
    `{"name", "type", "pos": [start, end)}` keyed by slot, in order of appearance.
    """
    values: dict[str, str] = {}
    for slot in dict.fromkeys(SLOT.findall(template)):
        pool = pools[slot.rstrip("0123456789")]
        while (value := pool(rng) if callable(pool) else rng.choice(pool)) in values.values():
            pass
        values[slot] = value
    text, entities, last = "", {}, 0
    for match in SLOT.finditer(template):
        text += template[last:match.start()]
        slot = match.group(1)
        kind = types.get(slot.rstrip("0123456789"))
        if kind:
            entities[slot] = {"name": values[slot], "type": kind, "pos": [len(text), len(text) + len(values[slot])]}
        text += values[slot]
        last = match.end()
    return text + template[last:], entities


def unique_rows(rng: random.Random, make: Callable[[random.Random], Row], n: int) -> list[Row]:
    """`n` rows from `make`, distinct in their first field (the model input)."""
    rows, seen = [], set()
    for _ in range(n * 100):
        row = make(rng)
        key = next(iter(row.values()))
        if key not in seen:
            seen.add(key)
            rows.append(row)
            if len(rows) == n:
                return rows
    raise RuntimeError(f"{make.__name__} could only make {len(rows)} distinct rows of {n}")


def words(text: str) -> tuple[str, ...]:
    """A vocabulary written as one whitespace-separated string."""
    return tuple(text.split())


def one_of(*parts: Pool) -> Callable[[random.Random], str]:
    """A pool that draws from one of `parts`, chosen uniformly."""
    def draw(rng: random.Random) -> str:
        part = rng.choice(parts)
        return part(rng) if callable(part) else rng.choice(part)
    return draw


def type_subset(rng: random.Random, labels: tuple[str, ...]) -> list[str]:
    """The entity types one row asks for: all of `labels` about half the time, else a proper subset."""
    if rng.random() < 0.45:
        return list(labels)
    chosen = set(rng.sample(labels, rng.randint(1, len(labels) - 1)))
    return [label for label in labels if label in chosen]


# ----------------------------------------------------------------------- ner / relations
FIRST_NAMES = words("""maria john wei fatima lucas omar elena kenji sofia david amara ivan nora ahmed julia carlos
    mei tom pedro hana samuel marco daniel yuki rosa felix anna peter paul laura james emma oliver mia noah lena hugo
    clara victor diana oscar nina leo sara adam alice simon eva martin helen jorge lucia raj anita chen li kim yusuf ali
    hassan olga igor boris jan eric karl greta hans ingrid lars astrid erik tomas pablo diego juan carmen miguel luis
    isabel ana rafael andre bruno luca marta nadia rita vera tina george henry arthur frank grace ruth irene""")
SURNAMES = words("""silva park ali nair rossi cohen novak berg smith jones brown garcia miller wilson taylor moore lee
    walker hall allen young king wright scott green baker adams nelson hill campbell mitchell roberts carter evans
    turner torres parker collins edwards stewart morris murphy cook rogers morgan cooper peterson reed bailey bell kelly
    howard ward cox watson brooks bennett gray hughes price sanders myers long ross foster fischer weber wagner becker
    hoffman koch richter klein wolf schmidt meyer schneider lopez gonzalez perez sanchez ramirez flores rivera gomez diaz
    reyes cruz ortiz morales gupta singh kumar shah patel khan tanaka suzuki ito yamamoto nakamura kobayashi wang zhang
    liu yang huang zhao wu zhou xu sun zhu hu guo lin choi jung kang cho ivanov kowalski larsen hansen nielsen jensen
    andersen johansson nilsson""")
ORG_WORDS = words("""blue river summit north polar bright green silver red oak star iron golden eagle atlas delta nova
    apex pioneer harbor maple cedar falcon crystal horizon granite coral orbit vector quantum lunar solar alpine
    pacific metro urban prime unity liberty fusion echo zenith beacon meridian crown vertex titan""")
ORG_SUFFIXES = ("labs", "systems", "bank", "foods", "motors", "media", "group", "energy", "capital", "traders",
                "software", "insurance", "partners", "logistics", "pharma", "studios", "telecom", "airlines")
# cities and countries, a few of several words
PLACES = words("""lisbon nairobi osaka toronto berlin lima cairo oslo denver madrid hanoi dublin chicago vienna manila
    bogota warsaw athens paris london rome tokyo beijing shanghai moscow sydney melbourne boston seattle houston dallas
    miami atlanta phoenix detroit montreal vancouver havana caracas santiago montevideo barcelona valencia milan naples
    turin venice florence munich hamburg frankfurt cologne zurich geneva brussels amsterdam rotterdam copenhagen
    stockholm helsinki prague budapest bucharest belgrade zagreb istanbul ankara tehran baghdad dubai delhi mumbai
    karachi lahore dhaka bangkok singapore jakarta seoul taipei beirut casablanca tunis algiers johannesburg durban
    edinburgh glasgow manchester liverpool birmingham leeds bristol cardiff belfast brisbane adelaide auckland
    wellington ottawa calgary kiev odessa minsk bern basel lausanne palermo genoa bologna verona pisa malaga bilbao
    granada nantes lille strasbourg dresden leipzig stuttgart hanover bremen nuremberg dortmund bonn mainz innsbruck
    bratislava ljubljana sarajevo skopje tirana damascus amman doha alexandria pretoria tripoli islamabad kabul
    yerevan baku jaipur lucknow patna goa bombay calcutta hyderabad bangalore saigon penang bali cebu guangzhou
    shenzhen nanjing tianjin macau kobe yokohama fukuoka okinawa kazan anchorage honolulu fresno sacramento oakland
    tucson albuquerque omaha tulsa orlando tampa raleigh louisville indianapolis milwaukee albany hartford newark
    philadelphia savannah charleston wichita spokane tacoma boise halifax saskatoon edmonton winnipeg guadalajara
    monterrey puebla cordoba rosario mendoza france germany spain italy portugal greece turkey egypt kenya nigeria
    ghana morocco algeria ethiopia uganda tanzania zambia angola brazil argentina chile peru colombia venezuela mexico
    canada cuba jamaica india pakistan nepal china japan korea vietnam thailand cambodia malaysia indonesia australia
    russia ukraine poland austria switzerland belgium netherlands denmark sweden norway finland iceland ireland
    scotland wales england hungary romania bulgaria serbia croatia armenia iran iraq syria lebanon israel qatar
    oman yemen afghanistan bangladesh mongolia""") + (
    "new york", "los angeles", "hong kong", "rio de janeiro", "sao paulo", "new delhi", "mexico city", "tel aviv",
    "abu dhabi", "las vegas", "san francisco", "santo domingo", "costa rica", "sri lanka", "south africa",
    "new zealand", "el paso", "st louis", "ho chi minh city", "addis ababa", "dar es salaam", "port louis")
PERSON = one_of(lambda rng: f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}")
ORG = one_of(lambda rng: f"{rng.choice(ORG_WORDS)} {rng.choice(ORG_SUFFIXES)}",
             lambda rng: f"{rng.choice(SURNAMES)} {rng.choice(ORG_SUFFIXES)}")
WHEN = ("today", "last week", "this morning", "on friday", "last year", "in march", "yesterday")
SUBJECTS = ("the team", "my neighbor", "everyone", "the manager", "our teacher", "the new intern", "a friend")
ACTIVITIES = ("finished the report", "was late", "bought a bicycle", "cooked dinner", "missed the bus",
              "fixed the printer", "went for a long walk", "read two books")
IE_POOLS = {"per": PERSON, "org": ORG, "loc": PLACES, "when": WHEN, "subj": SUBJECTS, "act": ACTIVITIES}
IE_TYPES = {"per": "person", "org": "organization", "loc": "location"}
NER_LABELS = ("person", "organization", "location")

NER_TEMPLATES = (
    "{per} works at {org} in {loc}",
    "{per} moved to {loc} {when}",
    "{org} opened a new office in {loc} {when}",
    "{when} {per} met the team from {org}",
    "{per} and {per2} flew to {loc} for a conference",
    "the chief executive of {org} is {per}",
    "{loc} hosted the annual meeting of {org} {when}",
    "{per} called {per2} from {loc}",
    "{org} hired {per} as a data analyst",
    "{per} spent the summer in {loc} and {loc2}",
    "{org} moved its headquarters from {loc} to {loc2}",
    "{subj} drove from {loc} to {loc2} {when}",
    "{per} lived in {loc}, {loc2} and {loc3}",
    "{org} bought a factory near {loc}",
    "{per} gave a talk about {org}",
    "{per} introduced {per2} to {per3} {when}",
    "{org} and {org2} signed a deal in {loc}",
    "{org} sold its office in {loc} to {org2}",
    "{per} visited {loc} and then {loc2}",
    "the weather in {loc} was bad {when}",
    "{subj} {act} in {loc}",
    "{subj} {act} {when}",
    "{subj} {act}",
)


def make_ner(rng: random.Random) -> Row:
    sentence, entities = fill(rng, rng.choice(NER_TEMPLATES), IE_POOLS, IE_TYPES)
    return {"sentence": sentence, "entities": list(entities.values()), "types": type_subset(rng, NER_LABELS)}
# (template, relations as (head slot, relation type, tail slot))
REL_TEMPLATES = (
    ("{per} works for {org}, which is based in {loc}", (("per", "works_for", "org"), ("org", "located_in", "loc"))),
    ("{per} joined {org} {when}", (("per", "works_for", "org"),)),
    ("{org} is headquartered in {loc}", (("org", "located_in", "loc"),)),
    ("{per} is an engineer at {org} in {loc}", (("per", "works_for", "org"), ("org", "located_in", "loc"))),
    ("{per} and {per2} both work at {org}", (("per", "works_for", "org"), ("per2", "works_for", "org"))),
    ("{org}, a company from {loc}, employs {per}", (("org", "located_in", "loc"), ("per", "works_for", "org"))),
    ("{per} visited {loc} on holiday {when}", ()),
    ("{per} left {org} and moved to {loc}", ()),
)


def make_relations(rng: random.Random) -> Row:
    template, relations = rng.choice(REL_TEMPLATES)
    sentence, entities = fill(rng, template, IE_POOLS, IE_TYPES)
    return {"sentence": sentence, "entities": list(entities.values()),
            "relations": [{"head": entities[h], "type": t, "tail": entities[d]} for h, t, d in relations]}


# ----------------------------------------------------------------------- intent
INTENTS = {
    "card_lost": ("i lost my {card} {when}", "my {card} was stolen {when}", "i can't find my {card} anywhere",
                  "someone took my {card}, please block it", "how do i report a missing {card}"),
    "balance_check": ("what is the balance of my {account}", "how much money is in my {account}",
                      "can you show me my {account} balance", "check my balance please",
                      "do i have enough money in my {account} to pay {amount}"),
    "transfer_money": ("i want to send {amount} to {person}", "transfer {amount} to {person} {soon}",
                       "move {amount} from my {account} to {person}", "please wire {amount} to {person}",
                       "how can i pay {person} {amount}"),
    "pay_bill": ("i need to pay my {bill}", "pay the {bill} from my {account}", "can i settle my {bill} {soon}",
                 "set up automatic payment for my {bill}", "my {bill} is due, please pay it"),
    "exchange_rate": ("what is the exchange rate for {currency}", "how many {currency} do i get for {amount}",
                      "convert {amount} into {currency}", "what's today's rate from dollars to {currency}",
                      "is the {currency} rate good right now"),
    "open_account": ("i would like to open a new {account}", "how do i open a {account}",
                     "can my son open a {account}", "i want to start a {account} with {amount}",
                     "what do i need to open a {account}"),
    "change_pin": ("i want to change the pin of my {card}", "how do i reset my {card} pin",
                   "i forgot the pin for my {card}", "please update my pin", "can i pick a new pin for my {card}"),
    "report_fraud": ("there is a charge of {amount} i did not make", "i see a payment to {merchant} that wasn't me",
                     "someone used my {card} at {merchant}", "i think my account was hacked {when}",
                     "report an unknown transaction of {amount} at {merchant}"),
}
INTENT_POOLS = {
    "card": ("debit card", "credit card", "visa card", "bank card", "travel card"),
    "account": ("savings account", "checking account", "joint account", "student account", "business account"),
    "amount": ("50 dollars", "200 euros", "1000 dollars", "75 pounds", "30 dollars", "500 euros", "12 dollars"),
    "person": ("my mom", "my landlord", "john", "my brother", "alice", "the plumber", "my friend sam"),
    "bill": ("electricity bill", "phone bill", "rent", "water bill", "internet bill", "gas bill"),
    "currency": ("euros", "yen", "pounds", "pesos", "rupees", "francs"),
    "merchant": ("an online store", "a gas station", "a hotel in paris", "a coffee shop", "a website i don't know"),
    "when": ("yesterday", "this morning", "last night", "on the train", "at the airport"),
    "soon": ("today", "tomorrow", "right now", "next monday", "at the end of the month"),
}
PREFIXES = ("", "", "hi, ", "hello, ", "excuse me, ", "good morning, ")
SUFFIXES = ("", "", "", " please", " thanks", ", it's urgent")


def make_intent(rng: random.Random) -> Row:
    intent = rng.choice(sorted(INTENTS))
    text, _ = fill(rng, rng.choice(INTENTS[intent]), INTENT_POOLS, {})
    return {"text": rng.choice(PREFIXES) + text + rng.choice(SUFFIXES), "intent": intent}


# ----------------------------------------------------------------------- banking requests: intent and details
# (the tasks of instructions/banking, which answer both of the same message, alone or in one composite target)
REQUEST_TYPES = {"card": "card", "account": "account", "amount": "amount", "person": "payee", "bill": "bill",
                 "currency": "currency", "merchant": "merchant"}
# payees, merchants and amounts from large pools, so that most evaluation details must be copied from the message
REQUEST_POOLS = {**INTENT_POOLS, "person": PERSON, "merchant": ORG,
                 "amount": one_of(lambda rng: f"{rng.randint(2, 990)} {rng.choice(('dollars', 'euros', 'pounds'))}")}


def make_request(rng: random.Random) -> Row:
    intent, prefix = rng.choice(sorted(INTENTS)), rng.choice(PREFIXES)
    text, details = fill(rng, rng.choice(INTENTS[intent]), REQUEST_POOLS, REQUEST_TYPES)
    entities = [{**e, "pos": [e["pos"][0] + len(prefix), e["pos"][1] + len(prefix)]} for e in details.values()]
    return {"text": prefix + text + rng.choice(SUFFIXES), "intent": intent, "entities": entities}


# ----------------------------------------------------------------------- code
# list functions: operation x mapping x filter, each with its code and its words
FILTERS = (("", "{n}", ""), ("{x} > 0", "positive {n}", "positive"), ("{x} < 0", "negative {n}", "negative"),
           ("{x} % 2 == 0", "even {n}", "even"), ("{x} % 2 == 1", "odd {n}", "odd"),
           ("{x} != 0", "nonzero {n}", "nonzero"), ("{x} > {k}", "{n} greater than {k}", "above_{k}"),
           ("{x} < {k}", "{n} less than {k}", "below_{k}"))
MAPS = (("{x}", "{f}", ""), ("{x} * {x}", "squares of the {f}", "squares"),
        ("abs({x})", "absolute values of the {f}", "abs"), ("{x} * 2", "doubled {f}", "doubled"))
OPS = (("sum({g})", "return the sum of the {m}", "sum"), ("max({g})", "return the largest of the {m}", "max"),
       ("min({g})", "return the smallest of the {m}", "min"), ("sorted({g})", "return the {m} in sorted order", "sort"),
       ("[{g}]", "return a list of the {m}", "list"))
TEXT_FUNCS = (("{p}.upper()", "return the text in uppercase", "shout"), ("{p}.lower()", "return the text in lowercase", "lower"),
              ("{p}.split()", "split the text into words", "words"), ("len({p}.split())", "count the words in the text", "word_count"),
              ("len({p})", "return the length of the text", "length"), ("{p}[::-1]", "reverse the text", "reverse"),
              ("{p}.strip()", "remove surrounding whitespace from the text", "strip"),
              ("{p}.replace(' ', '_')", "replace spaces with underscores in the text", "snake"),
              ("{p}.replace(' ', '-')", "replace spaces with dashes in the text", "dashes"),
              ("{p}.count('{c}')", "count the letter {c} in the text", "count_{c}"),
              ("{p}.startswith('{w}')", "check if the text starts with {w}", "starts_with_{w}"),
              ("[w for w in {p}.split() if len(w) > {k}]", "return the words longer than {k} letters", "long_words"),
              ("' '.join(sorted({p}.split()))", "sort the words in the text", "sort_words"))
GENERIC_NAMES = ("f", "compute", "helper", "process", "solve", "run")


def make_code(rng: random.Random) -> Row:
    k, c, w = rng.randint(1, 9), rng.choice("aeiost"), rng.choice(("the", "hello", "no", "yes"))
    if rng.random() < 0.3:
        body, summary, name = rng.choice(TEXT_FUNCS)
        p = rng.choice(("text", "s", "line", "sentence"))
    else:
        p, x = rng.choice(("items", "nums", "values", "xs", "data")), rng.choice("xnv")
        cond, fwords, fname = rng.choice(FILTERS)
        if rng.random() < 0.15 and cond:  # counting ignores the mapping
            body, summary, name = f"sum(1 for {x} in {p} if {cond})", f"count the {fwords}", f"count_{fname}"
        else:
            expr, mwords, mname = rng.choice(MAPS)
            op, owords, oname = rng.choice(OPS)
            gen = f"{expr} for {x} in {p}" + (f" if {cond}" if cond else "")
            if not cond and expr == "{x}" and oname != "list":
                gen = p
            body = op.format(g=gen)
            summary = owords.format(m=mwords.format(f=fwords))
            name = "_".join(part for part in (oname, mname, fname) if part)
        body, summary = body.replace("{x}", x), summary.replace("{n}", "numbers")
    name = rng.choice(GENERIC_NAMES) if rng.random() < 0.4 else name
    values = {"p": p, "k": k, "c": c, "w": w}
    return {"code": f"def {name.format(**values)}({p}):\n    return {body.format(**values)}",
            "summary": summary.format(**values)}


# ----------------------------------------------------------------------- biomed
CHEMICALS = words("""aspirin ibuprofen warfarin cisplatin lithium metformin haloperidol tamoxifen doxorubicin
    amiodarone isoniazid valproate heparin methotrexate insulin morphine cocaine nicotine caffeine penicillin
    cyclosporine digoxin lidocaine propranolol clozapine dexamethasone vancomycin gentamicin""")
DISEASES = ("hypertension", "cardiomyopathy", "seizures", "thrombocytopenia", "hearing loss", "pancreatitis",
            "lactic acidosis", "bradycardia", "hypothyroidism", "tardive dyskinesia", "anemia", "diabetes", "asthma",
            "depression", "psychosis", "arrhythmia", "neutropenia", "hepatitis")
ORGANS = ("liver", "kidney", "heart", "lung", "skin", "bone", "nerve", "gastric", "renal", "retinal", "muscle", "bowel")
LESIONS = ("failure", "injury", "fibrosis", "damage", "inflammation", "ulcers", "toxicity", "lesions", "necrosis")
BIO_POOLS = {"chem": CHEMICALS, "dis": one_of(DISEASES, lambda rng: f"{rng.choice(ORGANS)} {rng.choice(LESIONS)}"),
             "n": tuple(str(i) for i in range(12, 300, 7)),
             "m": ("6", "12", "18", "24", "36"), "grp": ("adults", "children", "elderly patients", "women")}
BIO_TYPES = {"chem": "chemical", "dis": "disease"}
BIO_LABELS = ("chemical", "disease")
BIO_TEMPLATES = (
    "patients given {chem} developed {dis}",
    "{dis} was reported after treatment with {chem}",
    "{chem} induced {dis} in two {grp}",
    "we describe a case of {dis} associated with {chem} therapy",
    "combined use of {chem} and {chem2} increased the risk of {dis}",
    "{chem} did not cause {dis} in this cohort of {n} {grp}",
    "the patient had a history of {dis} and {dis2}",
    "high doses of {chem} may lead to {dis} and {dis2}",
    "the study enrolled {n} {grp} over {m} months",
    "follow up visits were scheduled every {m} weeks for {n} {grp}",
)


def make_biomed(rng: random.Random) -> Row:
    sentence, entities = fill(rng, rng.choice(BIO_TEMPLATES), BIO_POOLS, BIO_TYPES)
    return {"sentence": sentence, "entities": list(entities.values()), "types": type_subset(rng, BIO_LABELS)}


# ----------------------------------------------------------------------- ner_places (held out)
# its own sentence frames, and cities that no training task uses
HELD_OUT_CITIES = ("kyoto", "lagos", "quito", "porto", "krakow", "seville", "perth", "accra", "tbilisi", "bergen",
                   "buenos aires", "cape town", "san diego", "kuala lumpur", "reykjavik", "marseille", "lyon",
                   "bordeaux", "antwerp", "salzburg", "riga", "vilnius", "tallinn", "kathmandu", "colombo", "chennai",
                   "nagoya", "hiroshima", "nashville", "baltimore")
PLACE_POOLS = {"loc": HELD_OUT_CITIES, "per": PERSON, "org": ORG}
PLACE_TEMPLATES = (
    "the ferry from {loc} to {loc2} was cancelled because of the storm",
    "{per} grew up in {loc} before joining {org}",
    "our next stop after {loc} is {loc2}",
    "{org} will ship the parts from {loc} next month",
    "the festival in {loc} attracted thousands of visitors",
    "{per} signed the contract with {org} on monday",
    "flights between {loc} and {loc2} are cheaper in winter",
)


def make_ner_places(rng: random.Random) -> Row:
    sentence, entities = fill(rng, rng.choice(PLACE_TEMPLATES), PLACE_POOLS, {"loc": "location"})
    return {"sentence": sentence, "entities": list(entities.values())}


# ----------------------------------------------------------------------- writing
# task -> (row maker, has a training file)
TASKS: dict[str, tuple[Callable[[random.Random], Row], bool]] = {
    "ner": (make_ner, True), "relations": (make_relations, True), "intent": (make_intent, True),
    "code": (make_code, True), "biomed": (make_biomed, True), "ner_places": (make_ner_places, False),
    "requests": (make_request, True),
}


def write_jsonl(path: Path, rows: list[Row]) -> None:
    text = "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows)
    path.write_text(text, encoding="utf-8", newline="\n")


def write_demo_data(out_dir: Path, seed: int = 0) -> dict[str, int]:
    """Write `<task>.train.jsonl` / `<task>.eval.jsonl` for every demo task; return file -> rows."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for task, (make, trained) in TASKS.items():
        rng = random.Random(f"t2t_mtl.demo/{task}/{seed}")  # str seeds hash with sha512: stable
        n_train = TRAIN_ROWS.get(task, N_TRAIN) if trained else 0
        rows = unique_rows(rng, make, n_train + N_EVAL if trained else N_HELD_OUT)
        splits = {"train": rows[:n_train], "eval": rows[n_train:]} if trained else {"eval": rows}
        for split, part in splits.items():
            write_jsonl(out_dir / f"{task}.{split}.jsonl", part)
            counts[f"{task}.{split}.jsonl"] = len(part)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m t2t_mtl.demo", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name, rows in write_demo_data(args.out_dir, args.seed).items():
        print(f"{args.out_dir / name}: {rows} rows")


if __name__ == "__main__":
    main()
