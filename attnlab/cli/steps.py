"""`attnlab steps`: the seed's walk-through, with numbers, on four input vectors."""

from __future__ import annotations

from ..options import seed
from ..reference import NORMALIZERS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "steps",
        help="print the seed's self-attention walk-through with numbers",
        description=(
            "Follow the seed line by line on 4 input vectors: q, k, v, the scaled scores "
            "alpha_(1,i), the normalized weights alpha'_(1,i) and b^1; then the matrix form "
            "and multi-head attention with 2 heads. Computed by attnlab.reference (NumPy, float64)."
        ),
    )
    p.add_argument("--seed", type=seed, default=0, help="random seed of the example (default 0)")
    p.add_argument("--normalize", default="softmax", choices=NORMALIZERS, help="how scores become weights (default softmax)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..viz.steps import render_walkthrough

    print(render_walkthrough(args.seed, args.normalize))
    return 0
