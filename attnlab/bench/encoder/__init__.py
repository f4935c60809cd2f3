"""`attnlab bench encoder`: the packed TransformerEncoder beside torch.nn.TransformerEncoder.

Part 1, sentences. Batches of B = 64 sentences whose lengths are drawn from a treebank
(``--treebank DIR`` or ``$ATTNLAB_DATA``: the directory's ``*train.conllu``; otherwise the
EWT length histogram shipped in ``attnlab/data/lengths_ewt.json``). Both encoders have
2 layers, d_model 256, 8 heads, d_ff 1024, relu, dropout 0.1, float32, and the same
weights (``TransformerEncoder.from_torch``, positions "none", so both compute the same
function; the run checks it):

    torch       nn.TransformerEncoder(batch_first=True, enable_nested_tensor=True) on the
                padded batch (B, N, D) with src_key_padding_mask; inference in eval mode
                under torch.no_grad(), i.e. its fast path (nested tensors when it can use
                them: norm_first=False), training = forward + backward of the padded batch;
    attnlab     forward_packed on the packed batch (T, D) + cu_seqlens.

Cases of one setting run interleaved (``timing.interleaved``) and every sample is the mean
time per batch over all batches, so load from other processes hits them alike; medians
over the repetitions are reported. "attnlab rotary" is the default encoder
(positions="rotary", so a different function than torch's) to show what positions cost.
Unless --no-malloc-tuning, glibc is asked to keep freed memory for reuse (both encoders
allocate large temporaries; otherwise each is page-faulted in afresh).

Useful FLOPs (``flops.py``) count real tokens only: per layer 2 T D (3D + D + 2 d_ff) for
the projections and feed-forward plus 4 n^2 D per sentence of n tokens for attention
(q k^T and weights @ v); training counts 3x the forward. The matmul reference is the
best median rate of square float32 products measured in the same run, over both GEMMs
PyTorch offers on CPU: ``torch.mm`` (MKL) and oneDNN (``torch.ops.mkldnn._linear_pointwise``,
which attnlab's linear layers use) -- at the start, at the end, and interleaved with every
setting as one more case of about the same FLOPs (the table also gives the rate relative
to that interleaved median).

Part 2, long single sequences (1 head, d = 64): ``attnlab.varlen_attention`` on
(N, 1, 64) with cu_seqlens [0, N] against ``F.scaled_dot_product_attention`` on
(1, 1, N, 64), forward under no_grad. Peak extra memory is measured in a fresh
subprocess per case: resident set after the inputs exist, peak resident set (VmHWM,
reset through /proc/self/clear_refs) during one call; the difference is reported.

    config.py     EncoderBenchConfig, QUICK
    lengths.py    sentence lengths (treebank or shipped histogram)
    sentences.py  part 1: the encoders, batches, cases, timing of a setting
    long.py       part 2: long single sequences; probe.py, their memory probe (python -m)
    targets.py    the goals and which were met
    report.py     the printed tables
    runner.py     run(cfg): everything above in order
"""

from .config import QUICK, EncoderBenchConfig
from .lengths import conllu_lengths, find_train_file, length_source, shipped_lengths
from .report import format_report
from .runner import run

__all__ = [
    "QUICK", "EncoderBenchConfig", "conllu_lengths", "find_train_file", "format_report",
    "length_source", "run", "shipped_lengths",
]
