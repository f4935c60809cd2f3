"""Benchmarks that print side-by-side ratios measured in one run.

    attention.py     `attnlab bench attention`: attention kernels and layers beside PyTorch's
    encoder/         `attnlab bench encoder`: the packed encoder beside torch's, long sequences
    hf/              `attnlab bench hf`: a BERT checkpoint beside transformers and ONNX Runtime
    serve_load.py    `attnlab bench serve`: a load test of the explorer's POST /api/tag

and what they share:

    timing.py        samples of a loop of calls; cases interleaved, medians over the rounds
    flops.py         the FLOP model (useful FLOPs on real tokens)
    matmul.py        the matmul reference rate of this machine, measured in the same run
    memory.py        peak memory of one call: torch's allocator, or the resident set in a fresh process
    machine.py       what the numbers were measured on

The command line (options, printing, JSON) lives in ``attnlab.cli.bench``.
"""
