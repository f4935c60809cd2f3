"""`attnlab tag`: tag raw text or CoNLL-U with a shipped or trained tagger, through the Python
API (``attnlab.load`` and the ``Tagger`` it returns).

    echo "Dr. Smith didn't stay. He left." | attnlab tag --model en
    echo "I saw a saw ." | attnlab tag --input pretokenized --format tsv
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
        description="Tag raw text or CoNLL-U. Raw text (the default for anything but CoNLL-U) is cut into "
                    "sentences, tokens and multiword tokens by the model's segmenter; a blank line starts a new "
                    "paragraph. The output is CoNLL-U with # newdoc/# newpar, # sent_id, # text, multiword-token "
                    "lines, SpaceAfter=No and each token's character offsets (TokenRange=start:end in MISC); "
                    "CoNLL-U input keeps its tokenization and every column but the predicted ones. "
                    "FILE may be '-' or omitted for stdin.",
    )
    p.add_argument("--model", help="a shipped model's name (e.g. en) or a model directory (default: the shipped "
                                    "English model, en)")
    p.add_argument("file", nargs="?", default="-", help="input file (default: stdin)")
    p.add_argument("--input", choices=INPUTS, default="auto",
                   help="input format: text (raw text, segmented by the model), presegmented (a sentence per "
                        "line, segmented into words by the model), pretokenized (a sentence per line, words "
                        "separated by spaces; no segmenter needed) or conllu (auto: conllu for *.conllu files and "
                        "input with a CoNLL-U word line, an ID and 9 more tab-separated columns; text otherwise)")
    p.add_argument("--format", choices=OUTPUTS, default="conllu",
                   help="output: CoNLL-U, TSV (the word, then each layer the model predicts: UPOS, XPOS, FEATS, LEMMA; "
                        "blank line between sentences) or JSON lines (one per sentence, each layer with the "
                        "probability of each value; raw text: also each token's form, offsets and words)")
    p.add_argument("--batch-size", type=positive_int, default=8192, help="tokens per batch (default 8192)")
    p.add_argument("--output", "-o", type=Path,
                   help="write here instead of stdout ('-'): a file is replaced atomically, a device or FIFO written "
                        "in place; never the input file or the model's own files")
    p.add_argument("--threads", type=positive_int, help="torch threads (default: torch's choice)")
    p.add_argument("--stats", action="store_true", help="print tokens/s to stderr")
    p.set_defaults(func=cmd_tag)


def cmd_tag(args) -> int:
    from ..api import default_model, load, resolve_model
    from ..output import check_output, write_output
    from ..tasks.run import use_threads
    from ..tasks.tag_io import format_output, read_source, stats_line, tag_source

    model = args.model if args.model is not None else default_model()
    inputs = [args.file, resolve_model(model)]  # never written over: the text or CoNLL-U, the model's files
    output = args.output if args.output is not None else "-"
    check_output(output, inputs)
    use_threads(args.threads)
    tagger = load(model, batch_tokens=args.batch_size)
    source = read_source(args.file, args.input)
    start = time.perf_counter()
    tagged = tag_source(tagger, source, asked=args.input)
    seconds = time.perf_counter() - start
    text = format_output(tagged, tagger.layers, args.format)
    write_output(output, text, inputs)
    if args.stats:
        print(stats_line(tagged, seconds), file=sys.stderr)
    return 0
