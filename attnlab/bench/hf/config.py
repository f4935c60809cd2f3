"""The settings of `attnlab bench hf`."""

from __future__ import annotations

from dataclasses import dataclass

# Word pieces per UD word: BERT's WordPiece vocabulary leaves most English words whole and
# splits rare words, names and numbers into 2-4 pieces; about 1.3 pieces per word is the
# assumption here (no real tokenizer ships with the benchmark). [CLS] and [SEP] are added.
PIECES_PER_WORD = 1.3


@dataclass(frozen=True)
class HFBenchConfig:
    batch: int = 64
    batches: int = 3  # different length draws; every sample runs all of them
    repeats: int = 5
    layers: int = 12  # bert-base
    width: int = 768
    heads: int = 12
    d_ff: int = 3072
    vocab_size: int = 30522
    max_positions: int = 512
    pieces_per_word: float = PIECES_PER_WORD
    threads: int = 2
    onnx: bool = True
    bf16: bool = False  # also attnlab in bfloat16 (weights and activations)
    int8: bool = False  # also attnlab with int8 linear layers (attnlab.precision)
    matmul_sizes: tuple[int, ...] = (1024, 2048)  # the square products of the reference rate
    profile: bool = False
    treebank: str | None = None
    seed: int = 0


# `--quick`: one batch, three rounds (same model size)
QUICK = dict(batches=1, repeats=3)
TARGETS = {"transformers sdpa": 3.0, "onnxruntime": 1.5}  # attnlab's speed-up at least
OF_MATMUL_TARGET = 0.90
