"""`attnlab tag`: tag raw text or CoNLL-U with a shipped or trained tagger, through the Python
API (``attnlab.load`` and the ``Tagger`` it returns).

    echo "I saw a saw ." | attnlab tag --model en --format tsv
    attnlab tag --model models/ewt-attention in.conllu -o out.conllu
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def add_parser(subparsers) -> None:
    from ..options import positive_int
    from ..tasks.tag_io import INPUTS, OUTPUTS

    p = subparsers.add_parser(
        "tag", help="tag raw text or CoNLL-U with a trained model",
        description="Tag sentences: raw text (one sentence per line, tokenized by --tokenize) or CoNLL-U "
                    "(its words are tagged, every other column kept). FILE may be '-' or omitted for stdin.",
    )
    p.add_argument("--model", help="a shipped model's name (e.g. en) or a model directory (default: the shipped "
                                    "English model, en)")
    p.add_argument("file", nargs="?", default="-", help="input file (default: stdin)")
    p.add_argument("--input", choices=INPUTS, default="auto",
                   help="input format (auto: conllu for *.conllu files and input with a CoNLL-U word line, an ID "
                        "and 9 more tab-separated columns; text otherwise)")
    p.add_argument("--format", choices=OUTPUTS, default="conllu",
                   help="output: CoNLL-U, TSV (the word, then each layer the model predicts: UPOS, XPOS, FEATS, LEMMA; "
                        "blank line between sentences) or JSON lines (one per sentence, each layer with the "
                        "probability of each value; text input: one per line, blank ones too)")
    p.add_argument("--tokenize", choices=("simple", "whitespace"), default="simple", help="tokenizer for text input")
    p.add_argument("--batch-size", type=positive_int, default=8192, help="tokens per batch (default 8192)")
    p.add_argument("--output", "-o", type=Path, help="write here (atomically) instead of stdout")
    p.add_argument("--threads", type=positive_int, help="torch threads (default: torch's choice)")
    p.add_argument("--stats", action="store_true", help="print tokens/s to stderr")
    p.set_defaults(func=cmd_tag)


def cmd_tag(args) -> int:
    from ..api import default_model, load
    from ..tasks.files import check_output, write_output
    from ..tasks.run import use_threads
    from ..tasks.tag_io import format_output, read_source, stats_line, tag_source

    if args.output:
        check_output(args.output)
    use_threads(args.threads)
    tagger = load(args.model if args.model is not None else default_model(), batch_tokens=args.batch_size)
    source = read_source(args.file, args.input)
    start = time.perf_counter()
    tagged = tag_source(tagger, source, tokenize=args.tokenize, asked=args.input)
    seconds = time.perf_counter() - start
    text = format_output(tagged, tagger.layers, args.format)
    if args.output:
        write_output(args.output, text)
    else:
        sys.stdout.write(text)
    if args.stats:
        print(stats_line(tagged, seconds), file=sys.stderr)
    return 0
