"""`attnlab tag`: tag raw text or CoNLL-U with a trained tagger.

    echo "I saw a saw ." | attnlab tag --model models/ewt-attention --format tsv
    attnlab tag --model models/ewt-attention in.conllu -o out.conllu
"""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    from ..tasks.tag_io import INPUTS, OUTPUTS

    p = subparsers.add_parser(
        "tag", help="tag raw text or CoNLL-U with a trained model",
        description="Tag sentences: raw text (one sentence per line, tokenized by --tokenize) or CoNLL-U "
                    "(its words are tagged, every other column kept). FILE may be '-' or omitted for stdin.",
    )
    p.add_argument("--model", type=Path, required=True, help="model directory")
    p.add_argument("file", nargs="?", default="-", help="input file (default: stdin)")
    p.add_argument("--input", choices=INPUTS, default="auto",
                   help="input format (auto: conllu for *.conllu files and input with a CoNLL-U word line, an ID "
                        "and 9 more tab-separated columns; text otherwise)")
    p.add_argument("--format", choices=OUTPUTS, default="conllu",
                   help="output: CoNLL-U, TSV (word, UPOS, XPOS; blank line between sentences) or JSON lines (one "
                        "per sentence, with the probability of each tag; text input: one per line, blank ones too)")
    p.add_argument("--tokenize", choices=("simple", "whitespace"), default="simple", help="tokenizer for text input")
    p.add_argument("--batch-size", type=int, default=8192, help="tokens per batch (default 8192)")
    p.add_argument("--output", "-o", type=Path, help="write here (atomically) instead of stdout")
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--stats", action="store_true", help="print tokens/s to stderr")
    p.set_defaults(func=cmd_tag)


def cmd_tag(args) -> int:
    from ..tasks.files import check_output, write_output
    from ..tasks.run import use_threads
    from ..tasks.tag_io import format_output, read_input, tag_sentences
    from ..tasks.tagging import load_tagger

    if args.output:
        check_output(args.output)
    use_threads(args.threads)
    loaded = load_tagger(args.model)
    sentences = read_input(args.file, args.input, args.tokenize)
    tagged = tag_sentences(loaded, sentences, batch_tokens=args.batch_size, probabilities=args.format == "json")
    text = format_output(sentences, tagged, args.format)
    if args.output:
        write_output(args.output, text)
    else:
        sys.stdout.write(text)
    if args.stats:
        print(tagged.stats(), file=sys.stderr)
    return 0
