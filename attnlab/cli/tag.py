"""`attnlab tag`: tag raw text or CoNLL-U with a shipped or trained tagger, through the Python
API (``attnlab.load`` and the ``Tagger`` it returns).

    echo "Dr. Smith didn't stay. He left." | attnlab tag --model en
    echo "I saw a saw ." | attnlab tag --input pretokenized --format tsv
    attnlab tag --model models/ewt-attention in.conllu -o out.conllu
    attnlab tag 'corpus/**/*.txt' -o tagged/ --workers 2 --stats
    attnlab tag corpus/ -o tagged/ --scheduler tcp://10.0.0.1:8786    # a Dask cluster (attnlab.distributed)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers) -> None:
    from ..api import BATCH_TOKENS
    from ..corpus import BLOCK_CHARS
    from ..options import positive_int
    from ..precision import PRECISIONS
    from ..tasks.tag_io import INPUTS, OUTPUTS

    p = subparsers.add_parser(
        "tag", help="tag raw text or CoNLL-U with a trained model: a file, stdin, a directory or a glob",
        description="Tag raw text or CoNLL-U. Raw text (the default for anything but CoNLL-U) is cut into "
                    "sentences, tokens and multiword tokens by the model's segmenter; a blank line starts a new "
                    "paragraph. The output is CoNLL-U with # newdoc/# newpar, # sent_id, # text, multiword-token "
                    "lines, SpaceAfter=No and each token's character offsets (TokenRange=start:end in MISC); "
                    "CoNLL-U input keeps its tokenization and every column but the predicted ones. "
                    "INPUT may be '-' or omitted for stdin. Input of any size is read, tagged and written in blocks "
                    "(whole paragraphs or sentences), so memory does not grow with it; a file output grows in "
                    "OUT.part and becomes OUT when complete, and a stopped run goes on with --resume. "
                    "A directory or a glob ('corpus/**/*.txt') is tagged file by file into -o DIRECTORY, which "
                    "mirrors the input tree.",
    )
    p.add_argument("--model", help="a shipped model's name (e.g. en) or a model directory (default: the shipped "
                                    "English model, en)")
    p.add_argument("file", nargs="?", default="-", metavar="INPUT",
                   help="a file, a directory or a glob pattern (quote it) (default: stdin)")
    p.add_argument("--input", choices=INPUTS, default="auto",
                   help="input format: text (raw text, segmented by the model), presegmented (a sentence per "
                        "line, segmented into words by the model), pretokenized (a sentence per line, words "
                        "separated by spaces; no segmenter needed) or conllu (auto: conllu for *.conllu files and "
                        "input with a CoNLL-U word line, an ID and 9 more tab-separated columns; text otherwise)")
    p.add_argument("--format", choices=OUTPUTS, default="conllu",
                   help="output: CoNLL-U, TSV (the word, then each layer the model predicts: UPOS, XPOS, FEATS, LEMMA; "
                        "blank line between sentences) or JSON lines (one per sentence, each layer with the "
                        "probability of each value; raw text: also each token's form, offsets and words)")
    p.add_argument("--batch-size", type=positive_int, default=BATCH_TOKENS,
                   help=f"words per forward pass (default {BATCH_TOKENS:,})")
    p.add_argument("--output", "-o", type=Path,
                   help="write here instead of stdout ('-'): a file is replaced when the output is complete, a device "
                        "or FIFO written in place; never the input file or the model's own files. For a directory "
                        "or glob INPUT: the directory the outputs go to (one per input file, the format's extension "
                        "added; outputs already complete are skipped)")
    p.add_argument("--resume", action="store_true",
                   help="go on from where a stopped run (killed, out of disk) left OUT.part, instead of starting "
                        "over; the output is the same as an uninterrupted run's")
    p.add_argument("--workers", type=positive_int,
                   help="processes that tag, each with its own copy of the model and one torch thread; the output "
                        "is the same for any number (default: one per usable CPU core, or 1 for input under "
                        "4 MiB, where starting the processes, about 2 s each, costs more than they save)")
    p.add_argument("--threads", type=positive_int, help="torch threads with --workers 1 (default: torch's choice)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="number format of the matrix products: fp32, bf16 (about twice as fast on a CPU with AVX-512 BF16 "
                        "or AMX; the accuracy cost per treebank is in RESULTS.md) or auto (bf16 where the CPU has "
                        "it natively, else fp32; default auto)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="tag on a Dask cluster (needs the 'cluster' extra): tcp://HOST:8786, the address of a running "
                        "'dask scheduler' whose workers ('dask worker tcp://HOST:8786 --nworkers N --nthreads 1') "
                        "see the model at the same path (or have the shipped one), or local:N to start N worker "
                        "processes on this machine (one thread each; startup about 2 s plus loading the model). "
                        "This process reads the input and writes the output; the workers tag its blocks, each "
                        "loading the model once. The output is the same as one process's; a block whose worker "
                        "dies is tagged again by another")
    p.add_argument("--block-chars", type=positive_int, default=BLOCK_CHARS,
                   help=f"characters read and tagged at once (default {BLOCK_CHARS:,}, 8 times that for CoNLL-U; a block ends at the first "
                        "paragraph, sentence or line end past this): memory and how soon output appears depend on "
                        "it, the output does not (but where a paragraph longer than a block is cut)")
    p.add_argument("--stats", action="store_true", help="print words, sentences, seconds and words/s to stderr at the end")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar (it is shown only when stderr is a terminal)")
    p.set_defaults(func=cmd_tag)


def cmd_tag(args) -> int:
    from ..api import default_model, load, resolve_model
    from ..corpus import Workers, default_workers, expand_inputs, tag_files, tag_stream
    from ..errors import UserError, require_extra
    from ..tasks.run import use_threads

    if args.scheduler is not None:
        require_extra("cluster", ["distributed"])
        from ..distributed import parse_scheduler

        parse_scheduler(args.scheduler)
        if args.workers is not None:
            raise UserError("--workers and --scheduler: give one (--scheduler local:N starts N worker processes here)")
    model = args.model if args.model is not None else default_model()
    model_dir = resolve_model(model)
    source = args.file
    size: int | None = None
    many = source != "-" and not Path(source).is_file() and (Path(source).is_dir() or not Path(source).exists())
    if many:
        files, base = expand_inputs(source)
        if args.output is None or str(args.output) == "-":
            raise UserError(f"{source}: a directory or glob of inputs needs -o DIRECTORY for their outputs")
        if args.output.exists() and not args.output.is_dir():
            raise UserError(f"{args.output}: is not a directory (a directory or glob of inputs writes one output per file)")
        size = sum(f.stat().st_size for f in files)
    else:
        from ..output import check_output

        check_output(args.output if args.output is not None else "-", [source, model_dir])
        size = Path(source).stat().st_size if source != "-" and Path(source).is_file() else None
    progress = not args.quiet and sys.stderr.isatty()
    pool: Any
    if args.scheduler is not None:
        from ..distributed import cluster_workers, model_ref

        tagger: Any = model_ref(model, batch_tokens=args.batch_size, precision=args.precision)  # loaded by the workers
        pool = cluster_workers(args.scheduler, tagger)
    else:
        workers, why = (int(args.workers), "--workers") if args.workers else default_workers(size)
        if workers == 1:
            use_threads(args.threads)
            tagger = load(model, batch_tokens=args.batch_size, precision=args.precision)
        else:  # the workers load the model; this process only reads and writes
            from ..distributed import model_ref

            tagger = model_ref(model, batch_tokens=args.batch_size, precision=args.precision)
        if progress and workers > 1:
            print(f"attnlab tag: {workers} worker processes ({why})", file=sys.stderr)
        pool = Workers(tagger, workers)
    with pool as mapper:
        if progress and args.scheduler is not None:
            print(f"attnlab tag: {mapper.workers} Dask workers, {mapper.threads} threads ({args.scheduler})",
                  file=sys.stderr)
        if many:
            totals = tag_files(tagger, files, base, args.output, fmt=args.format, kind=args.input, workers=mapper,
                               resume=args.resume, progress=progress, report=lambda m: print(m, file=sys.stderr),
                               block_chars=args.block_chars)
            summary = (f"{totals.files:,} files tagged, {totals.skipped:,} skipped as already complete, "
                       f"{len(totals.failed):,} failed")
            print(summary, file=sys.stderr)
        else:
            totals = tag_stream(tagger, source, args.output if args.output is not None else "-", fmt=args.format,
                                kind=args.input, workers=mapper, resume=args.resume, progress=progress,
                                inputs=[model_dir], block_chars=args.block_chars)
    if args.stats:
        print(totals.line(), file=sys.stderr)
    return 1 if totals.failed else 0
