"""`attnlab serve`: the attention explorer on http://127.0.0.1:8000/."""

from __future__ import annotations

import sys

from ..errors import UserError, require_extra
from ..options import port, positive_int, sentence_words

def add_parser(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the attention explorer (a page and a JSON API) for a trained tagger",
        description=(
            "Serve a trained tagger locally: a page to type a sentence, see its tags and explore the "
            "attention of every layer and head (one head or several overlaid, the whole model, one head's "
            "steps with their numbers, two sentences side by side), and the JSON API behind it: "
            "POST /api/tag (a document: raw text or pre-tokenized sentences, every layer the model "
            "predicts, token offsets and CoNLL-U), POST /api/attention, POST /api/steps, POST /api/whatif (one word "
            "replaced or masked: every tag's probability and one head's attention before and after), GET /api/health, and GET /api/heads: what each head does over "
            "a treebank (--heads REPORT.json from `attnlab heads --json`, or --treebank to measure it at start-up), "
            "shown beside every head in the model view. "
            "Give --model twice or more to serve several models side by side (the page compares them on one "
            "sentence; requests name one with \"model\", the first by default). "
            "Listens on 127.0.0.1 "
            "unless --host says otherwise; everything the page needs ships with attnlab. Requests are "
            "answered only when their Host header names this server: the loopback names, the --host "
            "address and every --allow-host name. --model may also be a Hugging Face checkpoint directory: its "
            "word pieces and every head's attention, without tags. Needs the 'serve' extra: pip install 'attnlab[serve]'."
        ),
    )
    p.add_argument("--model", required=True, action="append",
                   help="repeatable (the first is the page's own; the others are compared with it): "
                        "a shipped model's name (e.g. en), a model directory (from `attnlab train` or `attnlab demo`; a "
                        "model without attention shows "
                        "its tags), or a Hugging Face checkpoint directory (its word pieces and attention, no tags)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only); with another address, "
                        "name the server as other machines reach it with --allow-host")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer requests whose Host header is NAME (a host name or IP address, no patterns; "
                        "repeatable), e.g. the machine's name when --host is 0.0.0.0")
    p.add_argument("--port", type=port, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--max-tokens", type=sentence_words, default=128, help="most words in one sentence of a request (default 128)")
    p.add_argument("--max-body", type=positive_int, default=64 * 1024, help="largest request body in bytes (default 65536)")
    p.add_argument("--max-text", type=positive_int, default=10_000,
                   help="most characters of raw text in one /api/tag request (default 10000)")
    p.add_argument("--max-sentences", type=positive_int, default=100,
                   help="most sentences in one /api/tag request (default 100)")
    p.add_argument("--max-words", type=positive_int, default=2_000,
                   help="most words in one /api/tag request, all its sentences together (default 2000)")
    p.add_argument("--max-batch", type=positive_int, default=32,
                   help="most concurrent /api/tag requests tagged in one forward pass (default 32; 1 = one at a time)")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch threads (default 1: one sentence is too small to share between cores)")
    p.add_argument("--heads", default=None, metavar="REPORT.json",
                   help="what each head does over a treebank, from `attnlab heads --json`: the model view shows it "
                        "beside every head (GET /api/heads)")
    p.add_argument("--treebank", default=None, metavar="DIR_OR_FILE",
                   help="compute that report at start-up from a treebank directory's dev split or a CoNLL-U file "
                        "(one pass per head: see `attnlab heads`)")
    p.add_argument("--quiet", action="store_true", help="log only warnings and errors (no line per request)")
    p.set_defaults(func=run)


def _allowed_hosts(args) -> list[str]:
    """The Host header values to answer: the loopback names, the --host address, the --allow-host names."""
    from ..serve.app import LOOPBACK, host_name

    hosts = list(LOOPBACK)
    for option, names in (("--host", [args.host]), ("--allow-host", args.allow_host)):
        for name in names:
            try:
                hosts.append(host_name(name))
            except ValueError as exc:
                raise UserError(f"{option} {exc}") from None
    return list(dict.fromkeys(hosts))


def _head_report(args, model) -> dict | None:
    """The head report --heads names, or one computed from --treebank; None without either."""
    from ..viz.headstats import check_model, head_report, read_report

    if args.heads is not None and args.treebank is not None:
        raise UserError("give --heads (a report) or --treebank (to compute one), not both")
    if args.heads is not None:
        return read_report(args.heads, model)
    if args.treebank is None:
        return None
    from .heads import read_sentences

    path, sentences = read_sentences(args.treebank, "dev", None)
    check_model(model)
    print(f"attnlab serve: measuring every head over {path} ({len(sentences):,} sentences) ...", file=sys.stderr, flush=True)
    return head_report(model, sentences, progress=sys.stderr.isatty(), source=str(path))


def run(args) -> int:
    require_extra("serve", ["starlette", "uvicorn"])
    from ..serve.app import LOOPBACK, Limits, create_app
    from ..serve.server import bind_socket, make_server, url_of
    from ..viz.model import load_explainable

    import torch

    hosts = _allowed_hosts(args)
    limits = Limits(max_body_bytes=args.max_body, max_tokens=args.max_tokens, max_text_chars=args.max_text,
                    max_sentences=args.max_sentences, max_words=args.max_words)
    torch.set_num_threads(args.threads)
    models = [load_explainable(m) for m in args.model]
    heads = _head_report(args, models[0])
    app = create_app(models, limits=limits, allowed_hosts=hosts, max_batch=args.max_batch, heads=heads)
    sock = bind_socket(args.host, args.port)
    url = url_of(sock)
    if args.host not in LOOPBACK:
        print(f"attnlab serve: warning: listening on {args.host}: other machines can reach this server; it answers "
              f"requests for Host {', '.join(hosts)} (add names with --allow-host)", file=sys.stderr)
    shapes = [f"{given} (" + ("tags only: no attention" if m.no_attention else f"{m.layers} layers x {m.heads} heads") + ")"
              for given, m in zip(args.model, models)]
    print(f"attnlab explorer for {' and '.join(shapes)} at {url}/  (Ctrl-C stops it)", flush=True)
    server = make_server(app, log_level="warning" if args.quiet else "info", access_log=not args.quiet)
    server.run(sockets=[sock])
    return 0
