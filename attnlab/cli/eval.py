"""`attnlab eval`: score a model directory (of any task) on a gold CoNLL-U file, or a system's
CoNLL-U file against the gold one, whatever its tokenization.

    attnlab eval --model models/ewt-attention DIR/en_ewt-ud-test.conllu [--json]
    attnlab eval --model models/ewt-lemma DIR/en_ewt-ud-test.conllu --beam 4 [--no-lookup]
    attnlab eval DIR/en_ewt-ud-test.conllu --system output.conllu [--json]
    attnlab eval --model en DIR/en_ewt-ud-test.conllu --from-text [--json]
"""

from __future__ import annotations

import json

from ..options import positive_int


def add_parser(subparsers) -> None:
    from ..tasks import TASKS

    p = subparsers.add_parser(
        "eval", help="score a model (tagger, classifier or lemmatizer), or a system's CoNLL-U file, on a gold CoNLL-U file",
        description="Score a model directory (--model) on a gold CoNLL-U file. Taggers: UPOS accuracy, accuracy on "
                    "unknown words (lowercased form not in the training data), per-tag precision/recall/F1 and the "
                    "most confused tag pairs. Classifiers: accuracy and macro-F1 beside a bag-of-words baseline. "
                    "Lemmatizers: exact match (all, known and unknown forms) beside the most-frequent-lemma baseline. "
                    "With --system instead of --model: score a system's CoNLL-U file against the gold one as the "
                    "CoNLL 2018 shared task does, its tokenization, sentences and multiword tokens free (the two "
                    "files must spell the same text, spaces aside): precision, recall and F1 of Tokens, Sentences "
                    "and Words (aligned by character offsets), then of UPOS, XPOS, UFeats, AllTags and Lemmas over "
                    "the aligned words, with their accuracy on the aligned words (AligndAcc).",
    )
    p.add_argument("--model", help="a shipped model's name (e.g. en) or a model directory (from attnlab train)")
    p.add_argument("--system", metavar="SYSTEM.conllu",
                   help="score this CoNLL-U file (e.g. a pipeline's output from the gold's raw text) against the "
                        "gold file instead of a model ('-': stdin)")
    p.add_argument("--from-text", action="store_true",
                   help="with --model (a tagger with a segmenter): start from the gold file's raw text (each "
                        "sentence's # text, joined by a space within a paragraph, paragraphs by a blank line, as the "
                        "CoNLL 2018 shared task gives it), run the whole pipeline and score it as --system does")
    p.add_argument("file", help="gold CoNLL-U file ('-': stdin)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--batch-size", type=positive_int, default=8192, help="tokens per batch (default 8192)")
    p.add_argument("--threads", type=positive_int, help="torch threads (default: torch's choice)")
    p.add_argument("--no-baseline", action="store_true", help="classify/seq2seq models: skip the baseline")
    for name, task in TASKS.items():
        task.add_eval_arguments(p.add_argument_group(f"{name} models"))
    p.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    from ..errors import UserError

    if (args.model is None) == (args.system is None):
        raise UserError("give --model (score a model on the gold file) or --system (score a system's CoNLL-U "
                        "file against it), not both" if args.model else "give --model MODEL or --system SYSTEM.conllu")
    if args.system is not None:
        return _score_system(args)
    from ..api import resolve_model
    from ..tasks.run import evaluate

    if args.from_text:
        return _score_from_text(args)
    args.model = resolve_model(args.model)
    task, result = evaluate(args)
    print(json.dumps(task.report_json(result), indent=2) if args.json else task.report_text(result))
    return 0


def _score_system(args) -> int:
    from ..errors import UserError
    from ..evaluate_text import score_text_files

    if args.file == "-" and args.system == "-":
        raise UserError("the gold file and --system cannot both be standard input ('-')")
    report = score_text_files(args.file, args.system)
    print(json.dumps(report.to_json(), indent=2) if args.json else report.format())
    return 0


def _score_from_text(args) -> int:
    """Tag the gold file's raw text with the whole pipeline and score the result (--from-text)."""
    import time

    from ..api import load
    from ..data.conllu import parse_conllu
    from ..data.rawtext import document_text
    from ..errors import UserError
    from ..evaluate_text import score_text
    from ..tasks.files import read_gold
    from ..tasks.run import use_threads

    use_threads(args.threads)
    tagger = load(args.model, batch_tokens=args.batch_size, precision=args.precision)
    if not tagger.can_segment:
        raise UserError(f"model {args.model} has no segmenter, so --from-text cannot cut the raw text; score it on "
                        "gold tokenization (leave out --from-text)")
    gold, _ = read_gold(args.file)
    text = document_text(gold)
    start = time.perf_counter()
    doc = tagger(text)
    seconds = time.perf_counter() - start
    report = score_text(gold, parse_conllu(str(doc), "<pipeline output>", require_sentences=False))
    speed = len(doc.words) / max(seconds, 1e-9)
    if args.json:
        print(json.dumps({"model": str(args.model), "file": args.file, "from_text": True, **report.to_json(),
                          "seconds": round(seconds, 3), "words_per_s": round(speed)}, indent=2))
    else:
        print(f"{args.file} from its raw text ({len(text):,} characters; model {args.model})")
        print(report.format())
        print(f"raw text to CoNLL-U, every layer: {len(doc.words):,} words in {seconds:.2f} s ({speed:,.0f} words/s)")
    return 0
