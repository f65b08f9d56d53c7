"""PubMedQA (github.com/pubmedqa/pubmedqa, `data/ori_pqal.json`): yes/no/maybe questions on PubMed abstracts.

The file maps a PubMed id to ``{"QUESTION", "CONTEXTS": [str], "LABELS": [str],
"LONG_ANSWER", "final_decision"}``. Rows: `id`, `question`, `contexts`, `context` (the
contexts joined), `long_answer` and `final_decision` (yes, no or maybe).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets

from t2t_mtl.errors import T2TError
from t2t_mtl.tasks.importers import register
from t2t_mtl.tasks.importers.common import check_options, read_json, to_dataset


@register("pubmedqa")
def import_pubmedqa(path: Path, options: dict[str, Any], task: Any) -> datasets.Dataset:
    """One row per PubMedQA question."""
    check_options(options, {}, "pubmedqa")
    data = read_json(path)
    if not isinstance(data, dict):
        raise T2TError(f"{path}: a PubMedQA file maps PubMed ids to questions (a JSON object).")
    rows = []
    for pmid, record in data.items():
        try:
            contexts = [str(c) for c in record["CONTEXTS"]]
            rows.append({"id": str(pmid), "question": str(record["QUESTION"]), "contexts": contexts,
                         "context": " ".join(contexts), "long_answer": str(record.get("LONG_ANSWER", "")),
                         "final_decision": str(record["final_decision"])})
        except (KeyError, TypeError) as error:
            raise T2TError(f"{path}: question {pmid} lacks {error}.") from error
    return to_dataset(rows, path)
