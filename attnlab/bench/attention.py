"""`attnlab bench attention` (placeholder replaced by the real benchmark)."""


def add_parser(sub) -> None:
    p = sub.add_parser("attention", help="attention kernels vs PyTorch")
    p.add_argument("--json", default=None)
    p.set_defaults(func=lambda args: print("not yet"))
