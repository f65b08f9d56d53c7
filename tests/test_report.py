"""Result summaries and report files."""

from pathlib import Path

import pytest

from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation import Summary, TaskResult, read_report, summarize, to_markdown, write_report
from t2t_mtl.evaluation.report import Average, Averages

RESULTS = [
    TaskResult("ie/ner", "ie", False, 50, {"span_f1": 80.0, "span_f1/precision": 90.0}, "span_f1"),
    TaskResult("ie/re", "ie", True, 40, {"triple_f1": 40.0}, "triple_f1"),
    TaskResult("dialogue/intent", "dialogue", False, 30, {"accuracy": 90.0, "accuracy/macro_f1": 70.0}, "accuracy"),
]


def test_summary_averages() -> None:
    averages = summarize(RESULTS).averages
    assert averages == Averages(
        by_domain={"dialogue": Average(tasks=1, score=90.0), "ie": Average(tasks=2, score=60.0)},
        seen=Average(tasks=2, score=85.0),
        held_out=Average(tasks=1, score=40.0),
        overall=Average(tasks=3, score=70.0),
    )
    assert averages.to_dict() == {
        "by_domain": {"dialogue": {"tasks": 1, "score": 90.0}, "ie": {"tasks": 2, "score": 60.0}},
        "seen": {"tasks": 2, "score": 85.0},
        "held_out": {"tasks": 1, "score": 40.0},
        "overall": {"tasks": 3, "score": 70.0},
    }


def test_summary_leaves_out_empty_groups() -> None:
    averages = summarize(RESULTS[:1]).averages
    assert averages.held_out is None and "held_out" not in averages.to_dict()


def test_summary_tasks() -> None:
    first = summarize(RESULTS).tasks[0]
    assert first.task == "ie/ner" and first.primary == "span_f1" and first.score == 80.0
    assert summarize(RESULTS).to_dict()["tasks"][0] == {
        "task": "ie/ner", "domain": "ie", "held_out": False, "examples": 50,
        "scores": {"span_f1": 80.0, "span_f1/precision": 90.0}, "primary": "span_f1", "score": 80.0,
    }


def test_summary_preset_and_step_only_when_set() -> None:
    assert list(summarize(RESULTS).to_dict()) == ["tasks", "averages"]
    summary = summarize(RESULTS, metric_preset="ie_instructuie", step=7)
    assert isinstance(summary, Summary)
    assert summary.to_dict() == {**summarize(RESULTS).to_dict(), "metric_preset": "ie_instructuie", "step": 7}
    assert "metric preset `ie_instructuie`" in to_markdown(summary)


def test_primary_must_be_scored() -> None:
    with pytest.raises(T2TError, match="no score for its primary metric 'rouge_l'"):
        TaskResult("x", "d", False, 1, {"exact_match": 1.0}, "rouge_l")


def test_markdown() -> None:
    markdown = to_markdown(summarize(RESULTS))
    assert "| ie/ner | ie | seen | 50 | span_f1 | 80.00 | span_f1/precision 90.00 |" in markdown
    assert "| ie/re | ie | held-out | 40 | triple_f1 | 40.00 |  |" in markdown
    for row in ["| domain ie | 2 | 60.00 |", "| seen | 2 | 85.00 |", "| held-out | 1 | 40.00 |"]:
        assert row in markdown
    assert "| overall | 3 | 70.00 |" in markdown


def test_write_and_read(tmp_path: Path) -> None:
    summary = summarize(RESULTS, metric_preset="ie_instructuie", step=7)
    out_dir = tmp_path / "run"
    write_report(summary, out_dir)
    assert (out_dir / "results.md").read_text() == to_markdown(summary)
    assert read_report(out_dir) == summary


def test_read_missing_report(tmp_path: Path) -> None:
    with pytest.raises(T2TError, match="No results.json"):
        read_report(tmp_path)
