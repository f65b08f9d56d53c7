"""Evaluation: output parsers, metrics as `evaluate` modules, reports (formats re-exported from t2t_mtl.formats)."""

from t2t_mtl.evaluation.metrics import available_metrics, compute_metrics, load_metric
from t2t_mtl.evaluation.parsers import OutputParser, available_parsers, get_parser
from t2t_mtl.evaluation.report import Summary, TaskResult, read_report, summarize, to_markdown, write_report
from t2t_mtl.formats import FILTERS, format_spans, format_triples
from t2t_mtl.normalize import normalize_text

__all__ = [
    "FILTERS",
    "OutputParser",
    "Summary",
    "TaskResult",
    "available_metrics",
    "available_parsers",
    "compute_metrics",
    "format_spans",
    "format_triples",
    "get_parser",
    "load_metric",
    "normalize_text",
    "read_report",
    "summarize",
    "to_markdown",
    "write_report",
]
