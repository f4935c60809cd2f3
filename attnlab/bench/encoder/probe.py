"""The memory probe of the long-sequence cases, run in a fresh process by ``long.peak_extra_bytes``:

    python -m attnlab.bench.encoder.probe CASE N D THREADS

builds the inputs of CASE ("torch SDPA" or "attnlab varlen") at sequence length N and head
width D, calls it once and prints "<peak extra resident bytes> <rows of the output>".
"""

from __future__ import annotations

import sys

from ..memory import peak_resident_extra
from .long import long_cases


def main(argv: list[str]) -> None:
    import torch

    which, n, d, threads = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    if threads:
        torch.set_num_threads(threads)
    fn = long_cases(n, d)[which]
    long_cases(256, d)[which]()  # load every library the call needs, on small inputs
    extra, out = peak_resident_extra(fn)
    print(extra, out.shape[-2] if out.dim() == 4 else out.shape[0])


if __name__ == "__main__":
    main(sys.argv[1:])
