r"""CoNLL-style token files with BIO tags (CoNLL-2003, the MTL-Bioinformatics-2016 IOB corpora, ...).

One token per line, the token in `token_column` and its tag in `tag_column`. Columns
are split at `delimiter` when it is set, else at tabs when the line has one, else at
runs of ASCII spaces; never at other Unicode spaces, which belong to the token
(``New\u00a0York\tB-LOC`` is the token "New\u00a0York"). A blank line ends a sentence
and `-DOCSTART-` lines are skipped. Tags are `O`, `B-type` or `I-type`. An `I-type` that
does not continue an entity of its type (IOB1, or an annotation slip) starts one, as
BIO2 would write it with `B-`; such repairs are counted and reported.

Rows have the IE-INSTRUCTIONS NER shape, so NER task files read either format: the
tokens joined by single spaces as `sentence`, `entities` with character offsets, and
the (repaired) `tokens` and `tags`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from t2t_mtl.errors import T2TError
from t2t_mtl.tasks.importers import register
from t2t_mtl.tasks.importers.common import check_options, logger, split_file, to_dataset

OPTIONS = {"token_column": 0, "tag_column": -1, "delimiter": None}
ASCII_SPACE = " \t\r\n\f\v"
_SPACES = re.compile(" +")


def columns(line: str, delimiter: str | None) -> list[str]:
    """The columns of one line: at `delimiter`, else at tabs when there is one, else at runs of ASCII spaces."""
    line = line.rstrip("\r\n")
    if delimiter is not None:
        return line.split(delimiter)
    if "\t" in line:
        return [field.strip(" ") for field in line.split("\t")]
    return _SPACES.split(line.strip(" "))


def _sentences(source: Path, settings: dict[str, Any]) -> Iterator[list[tuple[int, str, str]]]:
    """Each sentence as (line number, token, tag) triples."""
    sentence: list[tuple[int, str, str]] = []
    with source.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = columns(line, settings["delimiter"])
            if not line.strip(ASCII_SPACE) or fields[0].startswith("-DOCSTART-"):
                if sentence:
                    yield sentence
                sentence = []
                continue
            try:
                sentence.append((number, fields[settings["token_column"]], fields[settings["tag_column"]].strip()))
            except IndexError:
                raise T2TError(f"{source}, line {number}: expected a token and a tag, got {line.strip(ASCII_SPACE)!r}. "
                               "Set source.options token_column, tag_column or delimiter.") from None
    if sentence:
        yield sentence


def bio2(tags: list[str]) -> tuple[list[str], int]:
    """Tags with every `I-` that cannot continue the previous tag's entity turned into `B-`; and how many."""
    repaired, count, previous = [], 0, "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag, count = "B-" + tag[2:], count + 1
        repaired.append(tag)
        previous = tag
    return repaired, count


def entities_of(tokens: list[str], tags: list[str]) -> list[dict[str, Any]]:
    """BIO2-tagged tokens to entities with character offsets into " ".join(tokens)."""
    entities: list[dict[str, Any]] = []
    offset = 0
    for token, tag in zip(tokens, tags):
        if tag.startswith("B-"):
            entities.append({"name": token, "type": tag[2:], "pos": [offset, offset + len(token)]})
        elif tag.startswith("I-"):
            entities[-1]["name"] += " " + token
            entities[-1]["pos"][1] = offset + len(token)
        offset += len(token) + 1
    return entities


def _check_tags(source: Path, sentence: list[tuple[int, str, str]]) -> None:
    for number, _, tag in sentence:
        if tag != "O" and not (tag[:2] in ("B-", "I-") and len(tag) > 2):
            raise T2TError(f"{source}, line {number}: tag '{tag}' is not O, B-type or I-type.")


@register("conll")
def import_conll(path: Path, options: dict[str, Any], task: Any) -> datasets.Dataset:
    """Rows of one CoNLL/BIO file (or the file `<split>.*` in a folder)."""
    settings = check_options(options, OPTIONS, "conll")
    source = split_file(path, task.source.split)
    rows, repairs = [], 0
    for sentence in _sentences(source, settings):
        _check_tags(source, sentence)
        tokens = [token for _, token, _ in sentence]
        tags, count = bio2([tag for _, _, tag in sentence])
        repairs += count
        rows.append({"sentence": " ".join(tokens), "tokens": tokens, "tags": tags,
                     "entities": entities_of(tokens, tags)})
    if repairs:
        logger.warning("%s: %d I- tag(s) did not continue an entity and were repaired as B- (BIO2).", source, repairs)
    return to_dataset(rows, source)
