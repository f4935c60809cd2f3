"""`attnlab serve`: the attention explorer on http://127.0.0.1:8000/."""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the attention explorer (a page and a JSON API) for a trained tagger",
        description=(
            "Serve a trained attention tagger locally: a page to type a sentence, see its tags and "
            "explore the attention of every layer and head (heatmap and line view), and the JSON API "
            "behind it: POST /api/tag, POST /api/attention, GET /api/health. Listens on 127.0.0.1 "
            "unless --host says otherwise; everything the page needs ships with attnlab."
        ),
    )
    p.add_argument("--model", type=Path, required=True, help="model directory (from `attnlab train` or `attnlab demo`)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--max-tokens", type=int, default=128, help="most tokens in one request's sentence (default 128)")
    p.add_argument("--max-body", type=int, default=64 * 1024, help="largest request body in bytes (default 65536)")
    p.add_argument("--max-batch", type=int, default=32,
                   help="most concurrent /api/tag requests tagged in one forward pass (default 32; 1 = one at a time)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: one sentence is too small to share between cores)")
    p.add_argument("--quiet", action="store_true", help="log only warnings and errors (no line per request)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..viz.model import load_explainable
    from .app import Limits, create_app
    from .server import LOOPBACK, bind_socket, make_server, url_of

    import torch

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    limits = Limits(max_body_bytes=args.max_body, max_tokens=args.max_tokens)
    model = load_explainable(args.model)
    local = args.host in LOOPBACK
    hosts = None if local else ["*"]
    app = create_app(model, limits=limits, allowed_hosts=hosts, max_batch=args.max_batch)
    sock = bind_socket(args.host, args.port)
    url = url_of(sock)
    if not local:
        print(f"attnlab serve: warning: listening on {args.host}: other machines can reach this server", file=sys.stderr)
    print(f"attnlab explorer for {args.model} ({model.layers} layers x {model.heads} heads) at {url}/  (Ctrl-C stops it)",
          flush=True)
    server = make_server(app, log_level="warning" if args.quiet else "info", access_log=not args.quiet)
    server.run(sockets=[sock])
    return 0
