"""Tiny random BERT-family checkpoints written by ``transformers`` itself (save_pretrained,
safetensors) into a directory: nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

FAMILIES = ["bert", "roberta", "xlm-roberta", "distilbert", "electra"]
VOCAB, WIDTH, HEADS, LAYERS, FF, POSITIONS = 60, 32, 4, 3, 48, 40


def hf_config(family: str):
    """A tiny ``transformers`` config of ``family`` (eager attention, so maps come out)."""
    transformers = pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")
    # wide initial weights, so that attention maps are far from uniform and layers differ
    common = dict(vocab_size=VOCAB, max_position_embeddings=POSITIONS, initializer_range=0.3)
    shape = dict(hidden_size=WIDTH, num_attention_heads=HEADS, num_hidden_layers=LAYERS, intermediate_size=FF)
    if family == "distilbert":
        config = transformers.DistilBertConfig(dim=WIDTH, n_heads=HEADS, n_layers=LAYERS, hidden_dim=FF, **common)
    elif family == "electra":
        config = transformers.ElectraConfig(embedding_size=16, **shape, **common)
    else:
        cls = {"bert": transformers.BertConfig, "roberta": transformers.RobertaConfig,
               "xlm-roberta": transformers.XLMRobertaConfig}[family]
        config = cls(**shape, **common)
    config._attn_implementation = "eager"
    return config


def hf_model(family: str, seed: int = 0):
    """A random ``transformers`` model of ``family`` in eval mode (ELECTRA: the discriminator)."""
    transformers = pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")
    config = hf_config(family)
    cls = {"bert": transformers.BertModel, "roberta": transformers.RobertaModel,
           "xlm-roberta": transformers.XLMRobertaModel, "distilbert": transformers.DistilBertModel,
           "electra": transformers.ElectraForPreTraining}[family]
    torch.manual_seed(seed)
    return cls(config).eval()


def save_checkpoint(model, directory: Path) -> Path:
    model.save_pretrained(directory, safe_serialization=True)
    return directory
