"""Variable-length ("varlen") attention over a packed batch.

Shape letters: T packed tokens, B sequences, H heads, d head width, n one sequence's
length. A packed batch is q, k, v (T, H, d) plus ``cu_seqlens`` (B + 1,) (see
``attnlab.packing``): sequence b owns rows ``cu_seqlens[b] : cu_seqlens[b + 1]`` and
attends only to itself. The result equals running
``attnlab.scaled_dot_product_attention`` on every sequence alone.

How it is computed (an implementation detail; the encoder around it never pads):

* ``impl="native"``: a C++ kernel (``attnlab.kernels``, compiled on first use) walks
  the packed rows directly, one (sequence, head) pair at a time on every core, with
  no padding and no copy; its backward recomputes the weights from the saved
  log-sum-exp. Long sequences are cut into pieces of query rows so that every core
  works even on one sequence with one head, and keys are taken in chunks that stay in
  cache, each row's softmax carried across chunks by its running maximum and sum (the
  flash-attention order), so memory stays linear in N. ``impl="auto"`` takes it for softmax when
  the kernels are available and the table calibrated on this CPU says it is the faster path
  for the call's mode (inference or training), longest sequence and head width
  (``attnlab.kernels.calibrate``: both paths timed side by side, once per machine). Without
  a calibration the fixed rule holds: native when no gradient is needed or every sequence is
  at most ``NATIVE_MAX_LEN`` long (its backward works one (sequence, head) pair per core,
  so for long sequences PyTorch's flash kernel often trains faster);
* ``impl="buckets"`` (pure PyTorch): sequences are sorted by length and cut into a
  few **length buckets**, chosen by a
  small dynamic programme that trades the cost of one more kernel call against the
  work spent on padding keys;
* each bucket's rows are gathered (one ``index_select`` for the whole batch) into a
  (b, n, H, d) block, padded only up to the longest sequence of that bucket, and run
  through PyTorch's fused ``scaled_dot_product_attention`` (its flash-attention CPU
  kernel); padded keys are masked, padded query rows are computed and dropped;
* when the buckets need no padding and keep the tokens in order (one long sequence,
  or equal lengths), nothing is gathered or copied: the kernel reads strided views.

Normalizers other than softmax, and ``return_weights``, take the readable path
(scores -> normalize -> weighted sum): per bucket, or per sequence for the weights.

Non-finite inputs follow the rules of ``attnlab.attention.functional`` on both paths:
the native kernel never reads a key outside a query's range, and the bucketed path,
whose padding and fused masking could pass an inf on, runs inputs holding an inf or NaN
through the readable path one sequence at a time.
"""

from __future__ import annotations

import inspect
import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import kernels
from ..kernels import calibrate
from ..packing import check_cu_seqlens
from .functional import all_finite, check_dtypes, check_normalize, scaled_dot_product_attention
from .masks import causal as causal_mask
from .masks import window as window_mask

log = logging.getLogger("attnlab.attention")

# Cost model for choosing buckets, in seconds on a CPU (only the ratio matters):
# one fused kernel call (with its gathers and Python) costs about _CALL_SECONDS; a
# query-key pair in one head costs about 4 * d / _PAIR_FLOPS seconds.
_CALL_SECONDS = 25e-6
_PAIR_FLOPS = 60e9

# Longest sequence the native kernel takes under impl="auto" when gradients are needed and
# no calibration was made (ATTNLAB_CALIBRATE=0, or the entry is missing from a cached table).
NATIVE_MAX_LEN = calibrate.NATIVE_MAX_LEN
IMPLS = ("auto", "native", "buckets")


@dataclass(frozen=True)
class Bucket:
    """Sequences that run through one kernel call, padded to length ``n``."""

    n: int  # padded length: the longest sequence in the bucket
    seqs: tuple[int, ...]  # indices into the batch, shortest first
    lengths: tuple[int, ...]  # their lengths
    slot: int  # first row of the bucket in the gathered (P, ...) layout

    @property
    def count(self) -> int:
        return len(self.seqs)

    @property
    def exact(self) -> bool:
        return all(length == self.n for length in self.lengths)


class VarlenPlan:
    """How one packed batch is laid out for attention; build once, share across layers.

    ``cu_seqlens`` (B + 1,) is validated against ``total`` (T) when given. ``width``
    (H * d) only tunes the bucket choice.

    Attributes: ``buckets`` (list of Bucket), ``identity`` (True when the bucketed
    layout is the packed layout itself, so nothing is gathered), ``gather_index``
    (P,) token row for each bucket row (padding rows repeat a real row, they are masked),
    ``scatter_index`` (T,) bucket row of each token.
    """

    def __init__(self, cu_seqlens: torch.Tensor, total: int | None = None, *, width: int = 256):
        cu = check_cu_seqlens(cu_seqlens, total)
        self.cu_seqlens = cu.contiguous()
        bounds = cu.tolist()
        self.total = bounds[-1]
        self.starts = bounds[:-1]
        self.lengths = [e - s for s, e in zip(bounds[:-1], bounds[1:])]
        self.longest = max(self.lengths, default=0)
        self.width = width
        self._bucketed: dict | None = None
        self._masks: dict[tuple, list[torch.Tensor | None]] = {}

    # -- the bucketed layout, built on first use (the native kernel needs none of it) --
    @property
    def buckets(self) -> list[Bucket]:
        return self._layout()["buckets"]

    @property
    def padded_total(self) -> int:
        """P: rows of the bucketed layout, padding included."""
        return self._layout()["padded_total"]

    @property
    def identity(self) -> bool:
        return self._layout()["identity"]

    @property
    def gather_index(self) -> torch.Tensor | None:
        return self._layout()["gather_index"]

    @property
    def scatter_index(self) -> torch.Tensor | None:
        return self._layout()["scatter_index"]

    def _layout(self) -> dict:
        if self._bucketed is None:
            buckets = _choose_buckets(self.lengths, self.width)
            order = [s for b in buckets for s in b.seqs]
            nonempty = [i for i, n in enumerate(self.lengths) if n > 0]
            identity = all(b.exact for b in buckets) and order == nonempty
            gather = scatter = None
            if not identity:
                gather, scatter = self._build_indices(buckets, self.cu_seqlens.device)
            self._bucketed = {
                "buckets": buckets,
                "padded_total": sum(b.count * b.n for b in buckets),
                "identity": identity,
                "gather_index": gather,
                "scatter_index": scatter,
            }
        return self._bucketed

    def _build_indices(self, buckets: list[Bucket], device) -> tuple[torch.Tensor, torch.Tensor]:
        gather: list[int] = []
        scatter = [0] * self.total
        for b in buckets:
            row = b.slot
            for s, length in zip(b.seqs, b.lengths):
                start = self.starts[s]
                gather.extend(range(start, start + length))
                gather.extend([start] * (b.n - length))  # padding rows: masked keys, dropped queries
                scatter[start: start + length] = range(row, row + length)
                row += b.n
        return (
            torch.tensor(gather, dtype=torch.long, device=device),
            torch.tensor(scatter, dtype=torch.long, device=device),
        )

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """Packed rows (T, ...) -> bucket rows (P, ...)."""
        index = self.gather_index  # None for the identity layout
        return x if index is None else x.index_select(0, index)

    def scatter(self, rows: torch.Tensor) -> torch.Tensor:
        """Bucket rows (P, ...) -> packed rows (T, ...)."""
        index = self.scatter_index  # None for the identity layout
        return rows if index is None else rows.index_select(0, index)

    def masks(self, causal: bool, window: int | None, device) -> list[torch.Tensor | None]:
        """Per bucket, the boolean attend_mask broadcastable to (b, H, n, n), or None.

        Padded keys are masked; padded query rows may attend everywhere (their outputs are
        dropped, and a row with something to attend keeps values and gradients finite).
        """
        key = (causal, window, str(device))
        if key not in self._masks:
            self._masks[key] = [_bucket_mask(b, causal, window, device) for b in self.buckets]
        return self._masks[key]

    def __repr__(self) -> str:
        shapes = ", ".join(f"{b.count}x{b.n}" for b in self.buckets)
        return f"VarlenPlan(T={self.total}, B={len(self.lengths)}, buckets=[{shapes}], identity={self.identity})"


def _choose_buckets(lengths: list[int], width: int) -> list[Bucket]:
    """Cut the sequences, sorted by length, into contiguous groups of least modelled cost."""
    order = sorted((n, i) for i, n in enumerate(lengths) if n > 0)
    if not order:
        return []
    # distinct lengths L[0] < L[1] < ... with cumulative counts
    distinct: list[int] = []
    cum = [0]
    for n, _ in order:
        if distinct and distinct[-1] == n:
            cum[-1] += 1
        else:
            distinct.append(n)
            cum.append(cum[-1] + 1)
    pair = 4.0 * width / _PAIR_FLOPS
    k = len(distinct)
    best = [0.0] + [math.inf] * k
    cut = [0] * (k + 1)
    for j in range(1, k + 1):
        per_seq = pair * distinct[j - 1] ** 2
        cj = cum[j]
        for i in range(j - 1, -1, -1):
            cost = best[i] + _CALL_SECONDS + (cj - cum[i]) * per_seq
            if cost < best[j]:
                best[j], cut[j] = cost, i
            if (cj - cum[i]) * per_seq > best[j]:
                break  # padding alone already costs more: longer groups only cost more
    groups, j = [], k
    while j > 0:
        groups.append((cut[j], j))
        j = cut[j]
    groups.reverse()
    buckets, slot = [], 0
    for i, j in groups:
        members = order[cum[i]: cum[j]]
        n = distinct[j - 1]
        seqs = tuple(s for _, s in members)
        buckets.append(Bucket(n=n, seqs=seqs, lengths=tuple(m for m, _ in members), slot=slot))
        slot += n * len(seqs)
    return buckets


def _pattern(n: int, causal: bool, window: int | None, device) -> torch.Tensor | None:
    mask = None
    if causal:
        mask = causal_mask(n, device=device)
    if window is not None:
        w = window_mask(n, window, device=device)
        mask = w if mask is None else mask & w
    return mask  # (n, n) or None


def _bucket_mask(b: Bucket, causal: bool, window: int | None, device) -> torch.Tensor | None:
    pattern = _pattern(b.n, causal, window, device)
    if b.exact:
        return pattern
    lengths = torch.tensor(b.lengths, device=device)
    valid = torch.arange(b.n, device=device)[None, :] < lengths[:, None]  # (b, n)
    keys = valid[:, None, None, :]  # (b, 1, 1, n)
    mask = keys if pattern is None else keys & pattern
    return mask | ~valid[:, None, :, None]  # padded query rows attend everywhere


def check_window(window: int | None) -> int | None:
    if window is not None and (not isinstance(window, int) or isinstance(window, bool) or window < 0):
        raise ValueError(f"window must be None or a non-negative int radius, got {window!r}")
    return window


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 3:
            raise ValueError(f"{name} must have shape (T, H, d), got {tuple(t.shape)}")
    if not (q.shape[0] == k.shape[0] == v.shape[0]):
        raise ValueError(
            f"q, k, v must have the same number of tokens T: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if not (q.shape[1] == k.shape[1] == v.shape[1]):
        raise ValueError(
            f"q, k, v must have the same number of heads H: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if q.shape[2] != k.shape[2]:
        raise ValueError(f"q and k must have the same head width d: q {tuple(q.shape)}, k {tuple(k.shape)}")
    check_dtypes(q=q, k=k, v=v)


def varlen_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    *,
    causal: bool = False,
    window: int | None = None,
    normalize: str = "softmax",
    scale: float | None = None,
    dropout: float = 0.0,
    return_weights: bool = False,
    plan: VarlenPlan | None = None,
    impl: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
    """Attention of every packed sequence over itself.

    q (T, H, d), k (T, H, d), v (T, H, dv), cu_seqlens (B + 1,) -> out (T, H, dv)
    and, when ``return_weights``, a list of B weight tensors (H, n_b, n_b).

    ``causal``: token i attends to tokens j <= i of its sequence; ``window``: to tokens
    with |i - j| <= window (both together: i - window <= j <= i). ``normalize`` is one of
    ``attnlab.NORMALIZERS``; ``scale`` defaults to 1 / sqrt(d); ``dropout`` applies to
    the weights. ``plan`` (a VarlenPlan of the same cu_seqlens) saves re-planning when
    several calls share one batch. ``impl``: "auto", "native" or "buckets" (see the module
    docstring); weights and normalizers other than softmax always take the readable path.
    """
    _check_qkv(q, k, v)
    return _varlen(
        (q, k, v), q.shape[0], cu_seqlens, causal=causal, window=window, normalize=normalize,
        scale=scale, dropout=dropout, return_weights=return_weights, plan=plan, impl=impl,
    )


def varlen_attention_qkv(qkv: torch.Tensor, cu_seqlens: torch.Tensor, **options):
    """``varlen_attention`` on stacked projections qkv (T, 3, H, d) -> out (T, H, d).

    The same computation, but the rows of q, k and v are gathered in one step. ``options``
    are the keyword arguments of ``varlen_attention`` (causal, window, normalize, scale,
    dropout, return_weights, plan, impl), with its defaults.
    """
    if qkv.dim() != 4 or qkv.shape[1] != 3:
        raise ValueError(f"qkv must have shape (T, 3, H, d), got {tuple(qkv.shape)}")
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise TypeError(f"varlen_attention_qkv() got unexpected keyword arguments: {', '.join(unknown)}")
    return _varlen(qkv, qkv.shape[0], cu_seqlens, **{**_OPTIONS, **options})


# varlen_attention's keyword arguments and their defaults: the options of both entry points
_OPTIONS = {
    name: p.default for name, p in inspect.signature(varlen_attention).parameters.items()
    if p.kind is p.KEYWORD_ONLY
}


def _check_options(normalize: str, window: int | None, dropout: float, impl: str) -> None:
    check_normalize(normalize)
    check_window(window)
    if impl not in IMPLS:
        raise ValueError(f"impl={impl!r} is unknown; choose one of {', '.join(IMPLS)}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


def _checked_plan(plan: VarlenPlan | None, cu_seqlens, total: int, width: int) -> VarlenPlan:
    if plan is None:
        return VarlenPlan(cu_seqlens, total, width=width)
    if plan.total != total:
        raise ValueError(f"plan was made for T = {plan.total} tokens, the inputs have T = {total}")
    if cu_seqlens is not plan.cu_seqlens and not torch.equal(check_cu_seqlens(cu_seqlens, total), plan.cu_seqlens):
        raise ValueError("plan was made for different cu_seqlens")
    return plan


def _varlen(src, total, cu_seqlens, *, causal, window, normalize, scale, dropout, return_weights, plan, impl):
    """src: stacked qkv (T, 3, H, d) or a tuple q, k, v (T, H, d)."""
    _check_options(normalize, window, dropout, impl)
    stacked = isinstance(src, torch.Tensor)
    tensors = (src,) if stacked else tuple(src)
    q = src[:, 0] if stacked else src[0]  # (T, H, d)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    plan = _checked_plan(plan, cu_seqlens, total, q.shape[1] * q.shape[-1])
    if return_weights:
        return _per_sequence(*(src.unbind(1) if stacked else src), plan, causal, window, normalize, scale, dropout)
    if plan.longest == 0:
        return q.new_zeros((total, q.shape[1], tensors[-1].shape[-1]))

    reason = _native_unsupported_reason(tensors, normalize, plan, impl)
    if impl == "native" and reason:
        raise ValueError(f"impl='native' cannot serve this call: {reason}")
    run = kernels.attention_qkv if stacked else kernels.attention
    if reason is None:  # the native kernel reads no key outside a query's range
        return run(*tensors, plan.cu_seqlens, scale=scale, causal=causal, window=window, dropout=dropout)
    if _widen_for_native(tensors, plan, impl) and _native_unsupported_reason(
            wide := tuple(t.float() for t in tensors), normalize, plan, impl) is None:
        out = run(*wide, plan.cu_seqlens, scale=scale, causal=causal, window=window, dropout=dropout)
        return out.to(q.dtype)
    if impl == "auto":
        log.debug("bucketed varlen attention: %s", reason)
    if not all_finite(*tensors):  # padded keys and flash's masking would let them through
        return _per_sequence(*(src.unbind(1) if stacked else src), plan, causal, window, normalize, scale, dropout)[0]
    return _bucketed(src, plan, causal, window, normalize, scale, dropout)


def _bucketed(src, plan, causal, window, normalize, scale, dropout):
    """Every bucket through one fused (softmax) or readable call, back in packed order."""
    stacked = isinstance(src, torch.Tensor)
    # 1) gather every bucket's rows: (P, 3, H, d) or three (P, H, d)
    rows = plan.gather(src) if stacked else tuple(plan.gather(t) for t in src)
    masks = plan.masks(causal, window, rows[0].device if not stacked else rows.device)
    outs = []
    for bucket, mask in zip(plan.buckets, masks):
        lo, hi = bucket.slot, bucket.slot + bucket.count * bucket.n
        # 2) the bucket as (b, H, n, d) views
        if stacked:
            block = rows[lo:hi].unflatten(0, (bucket.count, bucket.n))  # (b, n, 3, H, d)
            qb, kb, vb = (block[:, :, i].transpose(1, 2) for i in range(3))  # (b, H, n, d)
        else:
            qb, kb, vb = (r[lo:hi].unflatten(0, (bucket.count, bucket.n)).transpose(1, 2) for r in rows)
        # 3) attend
        if normalize == "softmax":
            use_causal_flag = causal and window is None and bucket.exact
            out = F.scaled_dot_product_attention(
                qb, kb, vb, attn_mask=None if use_causal_flag else mask, dropout_p=dropout,
                is_causal=use_causal_flag, scale=scale,
            )
        else:
            out = scaled_dot_product_attention(
                qb, kb, vb, attend_mask=mask, normalize=normalize, scale=scale, dropout=dropout, impl="readable"
            )
        outs.append(out.transpose(1, 2).flatten(0, 1))  # (b, H, n, dv) -> (b * n, H, dv)
    # 4) back to the packed order (padding rows dropped)
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)
    return plan.scatter(out)


def _widen_for_native(tensors, plan, impl) -> bool:
    """Whether a half-precision call under CPU autocast at inference (``attnlab.precision``;
    a model cast to bfloat16 keeps its bfloat16 path) of sentence lengths runs the float32
    native kernel on a widened copy instead of bucketed SDPA: the copy costs one pass over
    q, k, v; the kernel is faster there than the bucketed path (no padding, no gathers, no
    finiteness checks: the tagger's forward pass 1.12x faster, measured) and keeps the softmax in fp32."""
    return (impl == "auto" and plan.longest <= NATIVE_MAX_LEN and not torch.is_grad_enabled()
            and torch.is_autocast_enabled("cpu")
            and all(t.dtype in (torch.bfloat16, torch.float16) and t.device.type == "cpu" for t in tensors))


def _native_unsupported_reason(tensors, normalize, plan, impl) -> str | None:
    """None when the native kernel can serve the call, else why not."""
    if impl == "buckets":
        return "impl='buckets'"
    if normalize != "softmax":
        return f"normalize={normalize!r} (the native kernel only does softmax)"
    reason = kernels.native_unsupported_reason(*tensors)
    if reason or impl == "native":
        return reason
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    path, why = calibrate.choice(
        "training" if grad else "inference", plan.longest, tensors[0].shape[-1], tensors[0].dtype, timed_attention
    )
    return None if path == "native" else why


def timed_attention(qkv: torch.Tensor, cu_seqlens: torch.Tensor):
    """For ``attnlab.kernels.calibrate``: a function of ``impl`` that runs stacked qkv
    (T, 3, H, d) through that path, the plan made once (as an encoder's layers share it)."""
    plan = VarlenPlan(cu_seqlens, qkv.shape[0], width=qkv.shape[2] * qkv.shape[3])
    return lambda impl: varlen_attention_qkv(qkv, cu_seqlens, plan=plan, impl=impl)


def _per_sequence(q, k, v, plan, causal, window, normalize, scale, dropout):
    """The slow path that also returns weights: one readable call per sequence."""
    outs, weights = [], []
    heads, dv = q.shape[1], v.shape[-1]
    for start, n in zip(plan.starts, plan.lengths):
        if n == 0:
            weights.append(q.new_zeros((heads, 0, 0)))
            continue
        qs, ks, vs = (t[start: start + n].transpose(0, 1).unsqueeze(0) for t in (q, k, v))  # (1, H, n, d)
        out, w = scaled_dot_product_attention(
            qs, ks, vs, attend_mask=_pattern(n, causal, window, q.device), normalize=normalize,
            scale=scale, dropout=dropout, return_weights=True, impl="readable",
        )
        outs.append(out[0].transpose(0, 1))  # (n, H, dv)
        weights.append(w[0])  # (H, n, n)
    out = torch.cat(outs, dim=0) if outs else q.new_zeros((0, heads, dv))
    return out, weights
