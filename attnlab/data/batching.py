"""Length-bucketed batches: sentences of similar length together, so padding stays small
(and packed batches have similar costs), in a random but seeded order."""

from __future__ import annotations

import random
from typing import Sequence


def bucket_batches(
    lengths: Sequence[int], *, batch_size: int | None = None, max_tokens: int | None = None,
    shuffle: bool = True, seed: int = 0, pool: int = 50,
) -> list[list[int]]:
    """Cut example indices into batches of similar lengths.

    Exactly one of ``batch_size`` (examples per batch) or ``max_tokens`` (padded tokens
    per batch: ``len(batch) * longest``; a longer example still gets a batch of its own)
    is given. With ``shuffle``, examples are shuffled, then sorted by length within pools
    of ``pool`` batches' worth, and the batches are shuffled: every epoch sees different
    batches, each still nearly free of padding. The result depends only on the arguments.
    Every index appears in exactly one batch.
    """
    if (batch_size is None) == (max_tokens is None):
        raise ValueError("give exactly one of batch_size or max_tokens")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if any(n < 0 for n in lengths):
        raise ValueError("lengths must be >= 0")
    budget = max_tokens or 0  # read only when batch_size is None, when max_tokens is given
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    if shuffle:
        rng.shuffle(order)
        mean = max(sum(lengths) / max(len(lengths), 1), 1.0)
        per_batch = batch_size if batch_size is not None else max(int(budget / mean), 1)
        chunk = max(per_batch * pool, 1)
        order = [i for s in range(0, len(order), chunk) for i in sorted(order[s:s + chunk], key=lambda i: lengths[i])]
    else:
        order.sort(key=lambda i: lengths[i])

    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        n = max(lengths[i], 1)
        if current:
            full = ((len(current) >= batch_size) if batch_size is not None
                    else (max(longest, n) * (len(current) + 1) > budget))
            if full:
                batches.append(current)
                current, longest = [], 0
        current.append(i)
        longest = max(longest, n)
    if current:
        batches.append(current)
    if shuffle:
        rng.shuffle(batches)
    return batches
