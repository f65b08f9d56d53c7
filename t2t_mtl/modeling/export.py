"""Export a run as plain weights that load with `AutoModelForSeq2SeqLM.from_pretrained`."""

from __future__ import annotations

from pathlib import Path

from peft import PeftModel

from t2t_mtl.inference import Predictor


def export_merged(run_dir: str | Path, out: Path) -> Path:
    """Fold the trained adapter into the backbone and save model, tokenizer and generation config."""
    predictor = Predictor.from_run(run_dir, device="cpu")
    model = predictor.model
    merged = model.merge_and_unload() if isinstance(model, PeftModel) else model
    merged.save_pretrained(out, safe_serialization=True)
    predictor.tokenizer.save_pretrained(out)
    return out
