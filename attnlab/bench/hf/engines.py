"""The engines `attnlab bench hf` times, all with the weights of one saved checkpoint, and the
batches they share.

Shape letters: B sentences per batch, N the longest of them (in word pieces), T real pieces.
"""

from __future__ import annotations

import random
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .config import HFBenchConfig

if TYPE_CHECKING:
    import torch

ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


@dataclass
class Batch:
    """One batch in both forms: padded (B, N) for transformers and ONNX Runtime, packed (T,) for attnlab."""

    lengths: list[int]
    ids: torch.Tensor  # (B, N) long, 0 at padding
    mask: torch.Tensor  # (B, N) long, 1 = real piece
    onnx_feed: dict  # numpy arrays named as ONNX_INPUTS
    packed: torch.Tensor  # (T,) long
    cu: torch.Tensor  # (B + 1,)


def pieces_of(words: int, cfg: HFBenchConfig) -> int:
    """Word pieces of a sentence of ``words`` words: round(words x factor) + [CLS] + [SEP]."""
    return min(round(words * cfg.pieces_per_word) + 2, cfg.max_positions)


def make_batches(cfg: HFBenchConfig, population: list[int]) -> list[Batch]:
    """``cfg.batches`` batches of ``cfg.batch`` sentences, sentence lengths drawn from ``population``
    (in words), random piece ids."""
    import torch

    from ...packing import pack_padded

    rng = random.Random(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    batches = []
    for _ in range(cfg.batches):
        lengths = [pieces_of(rng.choice(population), cfg) for _ in range(cfg.batch)]
        n, lt = max(lengths), torch.tensor(lengths)
        mask = (torch.arange(n)[None, :] < lt[:, None]).long()
        ids = torch.randint(1, cfg.vocab_size, (cfg.batch, n), generator=generator) * mask
        feed = dict(zip(ONNX_INPUTS, (ids, mask, torch.zeros_like(ids), torch.arange(n).expand(cfg.batch, n))))
        packed, cu = pack_padded(ids, lt)
        batches.append(Batch(lengths, ids, mask, {k: v.contiguous().numpy() for k, v in feed.items()}, packed, cu))
    return batches


def quiet_transformers():
    """``transformers`` without progress bars and warnings; the module."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return transformers


def save_random_bert(cfg: HFBenchConfig, directory: Path):
    """A random BERT of the configured size saved to ``directory`` (safetensors); returns the
    ``transformers`` model with eager attention."""
    import torch

    transformers = quiet_transformers()

    config = transformers.BertConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.width, num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads, intermediate_size=cfg.d_ff, max_position_embeddings=cfg.max_positions,
    )
    config._attn_implementation = "eager"
    torch.manual_seed(cfg.seed)
    model = transformers.BertModel(config, add_pooling_layer=False).eval()
    model.save_pretrained(directory, safe_serialization=True)
    return model


def load_transformers(directory: Path, implementation: str):
    """The saved checkpoint as ``transformers.BertModel`` with ``attn_implementation``, eval mode."""
    return quiet_transformers().BertModel.from_pretrained(
        directory, attn_implementation=implementation, add_pooling_layer=False, local_files_only=True
    ).eval()


def export_onnx(model, cfg: HFBenchConfig, directory: Path) -> tuple[Path, dict, float]:
    """Export ``model`` (eager attention, padded inputs, dynamic B and N) and optimise it with
    ONNX Runtime's transformer optimiser (fused attention, LayerNorm, GELU, embeddings).
    Returns (the optimised file, the fused operators' counts, seconds spent)."""
    import torch
    from onnxruntime.transformers import optimizer

    from ..memory import quiet_stderr

    class Padded(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids, position_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             position_ids=position_ids).last_hidden_state

    started = time.perf_counter()
    raw, optimised = directory / "model.onnx", directory / "model.optimised.onnx"
    example = make_batches(replace(cfg, batch=2, batches=1), [5, 9])[0]
    args = tuple(torch.from_numpy(example.onnx_feed[k]) for k in ONNX_INPUTS)
    wrapper = Padded(model).eval()  # export restores the wrapper's mode, and so the model's
    with warnings.catch_warnings(), quiet_stderr(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, args, str(raw), dynamo=False, input_names=list(ONNX_INPUTS), output_names=["last_hidden_state"],
            dynamic_axes={k: {0: "B", 1: "N"} for k in (*ONNX_INPUTS, "last_hidden_state")}, opset_version=17,
        )
        fused = optimizer.optimize_model(str(raw), model_type="bert", num_heads=cfg.heads, hidden_size=cfg.width)
        fused.save_model_to_file(str(optimised))
    counts = {k: v for k, v in fused.get_fused_operator_statistics().items() if v}
    raw.unlink()
    return optimised, counts, time.perf_counter() - started


def quantized_onnx(path: Path) -> Path:
    """``path``'s model with the weights of its products (MatMul and the fused Attention)
    dynamically quantized to int8 by ONNX Runtime's own tool
    (``onnxruntime.quantization.quantize_dynamic``: QInt8 weights per channel, activations
    quantized per call), the way its documentation recommends for transformer models on CPUs."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from ..memory import quiet_stderr

    out = path.with_name(path.stem + ".int8.onnx")
    with warnings.catch_warnings(), quiet_stderr():
        warnings.simplefilter("ignore")
        # the fused operators (com.microsoft) have no shape inference: their outputs are float
        # the products only (the fused attention's too); the embeddings stay float
        quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Attention"],
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})
    return out


def ort_session(path: Path, threads: int):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads, all graph optimisations on."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def temporary_directory() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="attnlab-bench-hf-")
